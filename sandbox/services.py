"""Writes of the sandbox: its campaigns, the checks of a create call, and the rewards it makes.

The order of checks of a create call (the first that fails answers):
    100 method, 101 campaign, 102 passcode, 103 disabled, 104 expired (by date),
    then the parameters (111 missing recipient, 112 bad email, 113 bad parameter,
    114 more than 1,000), then the fault of the campaign, then 105 moku-coins.
The dashboard's connection check (MokugiftClient.check_campaign) relies on this order: a create
with no recipient makes nothing, and 111 says the campaign passed 101-104; no fault is drawn for
it (tests/test_campaign_check.py).
A query call checks only 100, 101 and 113: it makes nothing, so it answers for a disabled or
expired campaign too (reconciliation must work after a campaign ends).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.urls import reverse

from sandbox.models import Fault, SandboxCampaign, SandboxReward

MAX_REWARDS_PER_CALL = 1000
MAX_NAME_LENGTH = 200
MAX_RECIPIENT_ID_LENGTH = 200

# The table of the document, word for word.
ERROR_DESCRIPTIONS = {
    100: "Incorrect HTTP Method",
    101: "Invalid campaign ID",
    102: "Incorrect Passcode",
    103: "Campaign disabled",
    104: "Campaign is expired (by date or budget)",
    105: "Lack of moku-coins",
    110: "Internal error",
    111: "Missing recipient email/ID",
    112: "Invalid email",
    113: "Invalid parameters",
    114: "Over max. number of rewards",
}

# C0 controls other than tab/newline/return cannot travel in XML 1.0: such a name is refused.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# "Full Name <address>" in a recipient_list.
_NAMED_ITEM = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<address>[^<>]*)>")


class SandboxApiError(Exception):
    """An answer of the API with a Mokugift error code (the HTTP status stays 200)."""

    def __init__(self, code: int):
        super().__init__(f"{code} {ERROR_DESCRIPTIONS[code]}")
        self.code = code
        self.description = ERROR_DESCRIPTIONS[code]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


# --- Campaigns ----------------------------------------------------------------------------


def _passcode_hash(passcode: str) -> str:
    salt = secrets.token_hex(8)
    digest = hashlib.sha256(f"{salt}${passcode}".encode()).hexdigest()
    return f"{salt}${digest}"


def sandbox_passcode_matches(*, campaign: SandboxCampaign, passcode: str) -> bool:
    salt, _, digest = campaign.passcode_hash.partition("$")
    candidate = hashlib.sha256(f"{salt}${passcode}".encode()).hexdigest()
    return bool(digest) and hmac.compare_digest(candidate, digest)


def sandbox_campaign_save(
    *,
    campaign_id: str,
    passcode: str | None = None,
    coins: int | None = None,
    trees_per_reward: int | None = None,
    enabled: bool | None = None,
    expires: dt.date | str | None | _Unchanged = UNCHANGED,
    latency_ms: int | tuple[int, int] | None = None,
    fault: str | None = None,
    fault_rate: float | None = None,
    fault_delay: float | None = None,
) -> SandboxCampaign:
    """Create a sandbox campaign or change the given fields of an existing one.

    None (and UNCHANGED for `expires`, where None means "never expires") leaves a field as it
    is. A new campaign needs a passcode. Raises ValidationError for a value out of range.
    """
    campaign = SandboxCampaign.objects.filter(campaign_id=campaign_id).first()
    if campaign is None:
        if not passcode:
            raise ValidationError("A new sandbox campaign needs a passcode.")
        campaign = SandboxCampaign(campaign_id=campaign_id)
    if passcode:
        campaign.passcode_hash = _passcode_hash(passcode)
    if coins is not None:
        campaign.coins = coins
    if trees_per_reward is not None:
        campaign.trees_per_reward = trees_per_reward
    if enabled is not None:
        campaign.enabled = enabled
    if not isinstance(expires, _Unchanged):
        campaign.expires = dt.date.fromisoformat(expires) if isinstance(expires, str) else expires
    if latency_ms is not None:
        low, high = latency_ms if isinstance(latency_ms, tuple) else (latency_ms, latency_ms)
        if low < 0 or high < low:
            raise ValidationError(
                f"Latency must be N or MIN-MAX with 0 <= MIN <= MAX: {low}-{high}"
            )
        campaign.latency_ms_min, campaign.latency_ms_max = low, high
    if fault is not None:
        campaign.fault = fault
    if fault_rate is not None:
        campaign.fault_rate = fault_rate
    if fault_delay is not None:
        campaign.fault_delay = fault_delay
    if campaign.trees_per_reward < 1:
        raise ValidationError("Trees per reward must be at least 1.")
    if campaign.fault_delay < 0:
        raise ValidationError("The fault delay cannot be negative.")
    campaign.full_clean()
    campaign.save()
    return campaign


def sandbox_latency_wait(*, campaign: SandboxCampaign) -> None:
    low, high = campaign.latency_ms_min, campaign.latency_ms_max
    if high > 0:
        time.sleep(secrets.SystemRandom().uniform(low, high) / 1000 if high > low else low / 1000)


def sandbox_fault_pick(*, campaign: SandboxCampaign, asked: str | None = None) -> str:
    """The fault this call suffers: one asked for by the call itself, else the campaign's."""
    if asked in Fault.values:
        return asked
    if campaign.fault == Fault.NONE or campaign.fault_rate <= 0:
        return Fault.NONE
    if campaign.fault_rate >= 1 or secrets.SystemRandom().random() < campaign.fault_rate:
        return campaign.fault
    return Fault.NONE


def sandbox_campaign_check(*, campaign: SandboxCampaign, passcode: str) -> None:
    """102, 103, 104 for a create call, in that order."""
    if not passcode or not sandbox_passcode_matches(campaign=campaign, passcode=passcode):
        raise SandboxApiError(102)
    if not campaign.enabled:
        raise SandboxApiError(103)
    if campaign.expires is not None and campaign.expires < dt.datetime.now(dt.UTC).date():
        raise SandboxApiError(104)


# --- Recipients ---------------------------------------------------------------------------


@dataclass
class Recipient:
    """One item of a create call: valid (`error` None) or refused with an error code."""

    given: str
    address: str = ""
    name: str = ""
    error: int | None = None


def _recipient_check(*, address: str, name: str, by_id: bool) -> int | None:
    if not address:
        return 111
    if by_id:
        if len(address) > MAX_RECIPIENT_ID_LENGTH or _CONTROL_CHARS.search(address):
            return 113
    else:
        try:
            validate_email(address)
        except ValidationError:
            return 112
    if len(name) > MAX_NAME_LENGTH or _CONTROL_CHARS.search(name):
        return 113
    return None


def recipient_parse_single(*, address: str | None, name: str | None, by_id: bool) -> Recipient:
    """The recipient of a single create call, or SandboxApiError 111, 112 or 113."""
    address = (address or "").strip()
    name = (name or "").strip()
    error = _recipient_check(address=address, name=name, by_id=by_id)
    if error:
        raise SandboxApiError(error)
    return Recipient(given=address, address=address, name=name)


def recipients_parse_list(*, recipient_list: str | None, by_id: bool) -> list[Recipient]:
    """Every item of a recipient_list, each valid or with its own error code.

    The whole call fails with 111 when the list is missing or blank, and with 114 when it has
    more than 1,000 items. An empty item between two commas is an item with no recipient (111).
    """
    if not recipient_list or not recipient_list.strip():
        raise SandboxApiError(111)
    items = [item.strip() for item in recipient_list.split(",")]
    if len(items) > MAX_REWARDS_PER_CALL:
        raise SandboxApiError(114)
    recipients = []
    for item in items:
        named = _NAMED_ITEM.fullmatch(item)
        if named:
            address, name = named["address"].strip(), named["name"].strip()
        elif "<" in item or ">" in item:
            recipients.append(Recipient(given=item, error=113))
            continue
        else:
            address, name = item, ""
        error = _recipient_check(address=address, name=name, by_id=by_id)
        recipients.append(Recipient(given=item, address=address, name=name, error=error))
    return recipients


# --- Rewards ------------------------------------------------------------------------------


@dataclass
class CreateOutcome:
    transaction_id: str
    made: list[SandboxReward] = field(default_factory=list)
    # Items for which no reward was made, in the order given, each with its error code.
    unsent: list[Recipient] = field(default_factory=list)


def sandbox_rewards_create(
    *,
    campaign: SandboxCampaign,
    recipients: list[Recipient],
    by_id: bool,
    emailed: bool,
    url_for: Callable[[str], str],
) -> CreateOutcome:
    """Make one reward per valid recipient, as many as the moku-coins pay for.

    The coins are taken under a row lock in the same transaction as the rewards, so two
    concurrent calls can never spend the same coins; items beyond the balance get 105.
    """
    outcome = CreateOutcome(transaction_id=uuid.uuid4().hex)
    wanted = [r for r in recipients if r.error is None]
    with transaction.atomic():
        balance = (
            SandboxCampaign.objects.select_for_update()
            .values_list("coins", flat=True)
            .get(pk=campaign.pk)
        )
        granted = min(balance, len(wanted))
        for recipient in wanted[granted:]:
            recipient.error = 105
        if granted:
            SandboxCampaign.objects.filter(pk=campaign.pk).update(coins=F("coins") - granted)
            now = dt.datetime.now(dt.UTC)
            rewards = []
            for recipient in wanted[:granted]:
                remote_id = secrets.token_hex(8)
                rewards.append(
                    SandboxReward(
                        campaign=campaign,
                        remote_id=remote_id,
                        transaction_id=outcome.transaction_id,
                        recipient_email="" if by_id else recipient.address,
                        recipient_id=recipient.address if by_id else "",
                        name=recipient.name,
                        created=now,
                        tree_count=campaign.trees_per_reward,
                        emailed=emailed,
                        url=url_for(remote_id),
                    )
                )
            outcome.made = SandboxReward.objects.bulk_create(rewards)
    outcome.unsent = [r for r in recipients if r.error is not None]
    return outcome


def sandbox_rewards_fill(
    *,
    campaign_id: str,
    count: int,
    by_id: bool = False,
    created: dt.datetime | None = None,
    prefix: str = "bulk",
    batch_size: int = 5000,
) -> int:
    """Add `count` rewards to a sandbox campaign at once, for benchmarks of the query calls.

    Recipients are "<prefix>-<n>@example.com" (or "<prefix>-<n>" by ID). No coins are spent and
    no call is made: this is fixture data, written in batches so memory stays flat.
    """
    campaign = SandboxCampaign.objects.get(campaign_id=campaign_id)
    created = created or dt.datetime.now(dt.UTC)
    transaction_id = uuid.uuid4().hex
    # The pages live where the dashboard's sandbox campaigns send their calls.
    api = urlsplit(settings.MOKUGIFT_SANDBOX_URL)
    page = f"{api.scheme}://{api.netloc}" + reverse("sandbox:reward_page", args=["RID"])
    done = 0
    while done < count:
        size = min(batch_size, count - done)
        rewards = []
        for n in range(done, done + size):
            remote_id = secrets.token_hex(8)
            recipient = f"{prefix}-{n}"
            rewards.append(
                SandboxReward(
                    campaign=campaign,
                    remote_id=remote_id,
                    transaction_id=transaction_id,
                    recipient_email="" if by_id else f"{recipient}@example.com",
                    recipient_id=recipient if by_id else "",
                    created=created,
                    tree_count=campaign.trees_per_reward,
                    url=page.replace("RID", remote_id),
                )
            )
        SandboxReward.objects.bulk_create(rewards)
        done += size
    return done
