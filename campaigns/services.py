"""Writes to campaigns. Every change of a campaign or its credentials leaves an audit event."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent, Kind
from audit.services import audit_record
from campaigns.crypto import DecryptionError
from campaigns.models import Campaign, check_verdict
from rewards.mokugift import (
    ApiError,
    DeadlineExceeded,
    MokugiftClient,
    MokugiftError,
    ProtocolError,
    TransportError,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)


def _history_record(
    *, campaign: Campaign, actor: User | None, kind: Kind, changes: dict[str, Any]
) -> None:
    """One change of a campaign, in the audit trail (the campaign page's history reads it
    back). The trail is told that the passcode changed, never what it is."""
    detail = {key: value for key, value in changes.items() if key != "passcode"}
    if "passcode" in changes:
        detail["credential_replaced"] = True
    audit_record(kind=kind, actor=actor, campaign=campaign, detail=detail)


# A person waits for the check (on save, on the button), so it gets less time than a send;
# never more than the settings give a call.
CHECK_TIMEOUT = (5.0, 10.0)
CHECK_DEADLINE = 15.0

# The fields a person edits on the campaign form; the passcode has its own door.
EDITABLE_FIELDS = ("name", "campaign_id", "environment", "enabled", "notes")
# The spending controls (rewards/services/controls.py enforces them): set by an admin, from
# the command line (campaign_set) or a page, through campaign_update like the rest.
CONTROL_FIELDS = ("approval", "approval_above", "monthly_budget", "monthly_budget_per_person")


@transaction.atomic
def campaign_create(
    *,
    actor: User | None,
    name: str,
    campaign_id: str,
    environment: str,
    passcode: str,
    enabled: bool = True,
    notes: str = "",
) -> Campaign:
    campaign = Campaign(
        name=name,
        campaign_id=campaign_id,
        environment=environment,
        passcode=passcode,
        enabled=enabled,
        notes=notes,
        created_by=actor,
    )
    campaign.full_clean()
    campaign.save()
    changes: dict[str, object] = {
        field: [None, getattr(campaign, field)] for field in EDITABLE_FIELDS
    }
    if passcode:
        changes["passcode"] = "set"
    _history_record(campaign=campaign, actor=actor, kind=Kind.CAMPAIGN_CREATED, changes=changes)
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, actor: User | None, **fields: object) -> Campaign:
    """Change plain fields (the form's, and the spending controls). Records only what really
    changed; no change, no event. ValidationError (Campaign.clean) for a rule that cannot be
    kept, e.g. approval above a number without the number."""
    unknown = set(fields) - set(EDITABLE_FIELDS) - set(CONTROL_FIELDS)
    if unknown:
        raise ValueError(f"Not editable here: {', '.join(sorted(unknown))}")
    # Without the passcode: an admin must be able to disable a campaign whose key is lost.
    before = Campaign.objects.select_for_update().defer("passcode").get(pk=campaign.pk)
    changes = {
        field: [getattr(before, field), value]
        for field, value in fields.items()
        if getattr(before, field) != value
    }
    if not changes:
        return campaign
    for field, value in fields.items():
        setattr(campaign, field, value)
    campaign.full_clean(exclude=["passcode"])
    campaign.save(update_fields=[*changes, "updated_at"])
    if set(changes) == {"enabled"}:
        kind = Kind.CAMPAIGN_ENABLED if campaign.enabled else Kind.CAMPAIGN_DISABLED
    else:
        kind = Kind.CAMPAIGN_UPDATED
    _history_record(campaign=campaign, actor=actor, kind=kind, changes=changes)
    return campaign


def campaign_set_enabled(*, campaign: Campaign, actor: User | None, enabled: bool) -> Campaign:
    return campaign_update(campaign=campaign, actor=actor, enabled=enabled)


@transaction.atomic
def campaign_passcode_replace(*, campaign: Campaign, actor: User | None, passcode: str) -> Campaign:
    campaign.passcode = passcode
    campaign.save(update_fields=["passcode", "updated_at"])
    _history_record(
        campaign=campaign, actor=actor, kind=Kind.PASSCODE_REPLACED, changes={"passcode": "set"}
    )
    return campaign


def campaigns_rotate_encryption_keys(*, batch_size: int = 500) -> int:
    """Re-encrypt every stored passcode under the newest key. Returns how many were done.

    Reading a passcode decrypts it with whichever key fits; saving encrypts it with the
    newest. One short transaction per batch, so a large table never holds a long lock.
    """
    done = 0
    last_pk = 0
    while True:
        with transaction.atomic():
            batch = list(
                Campaign.objects.select_for_update()
                .filter(pk__gt=last_pk)
                .exclude(passcode="")
                .order_by("pk")
                .only("pk", "passcode")[:batch_size]
            )
            if not batch:
                return done
            Campaign.objects.bulk_update(batch, ["passcode"])
            AuditEvent.objects.bulk_create(
                AuditEvent(kind=Kind.KEY_ROTATED, campaign=c) for c in batch
            )
        done += len(batch)
        last_pk = batch[-1].pk


# --- The connection check -----------------------------------------------------------------


@dataclass(frozen=True)
class CheckOutcome:
    """What a connection check found. ok: True accepted, False refused, None could not check
    (no answer, or one that says nothing about the credentials). `message` is for people (the
    reason, after the verdict) and never holds the passcode."""

    ok: bool | None
    message: str
    at: dt.datetime

    @property
    def verdict(self) -> str:
        return check_verdict(self.ok)


ACCEPTED_WORDS = (
    "Mokugift knows the campaign ID, the passcode is right, and the campaign is enabled and "
    "not expired."
)

UNREADABLE_WORDS = (
    "The stored passcode cannot be read with the current encryption keys "
    "(FIELD_ENCRYPTION_KEYS): replace the passcode."
)


def _why_no_answer(error: MokugiftError, *, campaign: Campaign) -> str:
    if isinstance(error, ApiError):
        return f"{error.description} (Mokugift error {error.code})"
    if isinstance(error, DeadlineExceeded):
        return f"no complete answer from Mokugift within {error.seconds:g} s"
    host = urlsplit(campaign.api_base_url).netloc or campaign.api_base_url
    words = str(error).removeprefix(f"Mokugift reward_url/{campaign.campaign_id}: ")
    words = words.replace(" (outcome unknown)", "")
    if isinstance(error, ProtocolError):
        return f"an answer from {host} that is not Mokugift's: {words}"
    # The library's own words after the first colon name classes and pools; ours suffice.
    return f"{words.split(': ', 1)[0]} ({host})"


def campaign_credentials_check(*, campaign: Campaign) -> CheckOutcome:
    """Ask Mokugift whether it accepts the campaign's ID and passcode; writes nothing.

    `campaign` may be unsaved (a form about to be saved): its environment, campaign ID and
    passcode are what is checked. The call is a create with no recipient, which makes nothing
    (see MokugiftClient.check_campaign).
    """
    at = timezone.now()
    try:
        passcode = campaign.passcode
    except DecryptionError:
        return CheckOutcome(ok=None, message=UNREADABLE_WORDS, at=at)
    if not passcode:
        return CheckOutcome(ok=False, message="No passcode is set.", at=at)
    client = MokugiftClient.for_campaign(
        campaign,
        timeout=(
            min(CHECK_TIMEOUT[0], settings.MOKUGIFT_CONNECT_TIMEOUT),
            min(CHECK_TIMEOUT[1], settings.MOKUGIFT_READ_TIMEOUT),
        ),
        deadline=min(CHECK_DEADLINE, settings.MOKUGIFT_CALL_DEADLINE),
    )
    try:
        answer = client.check_campaign()
    except (TransportError, ApiError) as error:
        outcome = CheckOutcome(ok=None, message=_why_no_answer(error, campaign=campaign), at=at)
    else:
        if answer.accepted:
            outcome = CheckOutcome(ok=True, message=ACCEPTED_WORDS, at=at)
        else:
            words = f"{answer.description} (Mokugift error {answer.code})"
            outcome = CheckOutcome(ok=False, message=words, at=at)
    # The client scrubs its errors; this is the last door before a page, a log or a row.
    message = outcome.message.replace(passcode, "[passcode]")[:300]
    outcome = CheckOutcome(ok=outcome.ok, message=message, at=at)
    logger.info(
        "campaign check %s (%s, %s): %s",
        campaign.pk or "(unsaved)",
        campaign.campaign_id,
        campaign.environment,
        outcome.message,
    )
    return outcome


@transaction.atomic
def campaign_check_record(
    *, campaign: Campaign, actor: User | None, outcome: CheckOutcome
) -> Campaign:
    """Keep a check's outcome on the campaign (last_check_*), and in its history."""
    Campaign.objects.filter(pk=campaign.pk).update(
        last_check_at=outcome.at, last_check_ok=outcome.ok, last_check_message=outcome.message
    )
    campaign.last_check_at = outcome.at
    campaign.last_check_ok = outcome.ok
    campaign.last_check_message = outcome.message
    _history_record(
        campaign=campaign,
        actor=actor,
        kind=Kind.CAMPAIGN_CHECKED,
        changes={"ok": outcome.ok, "message": outcome.message},
    )
    return campaign


def campaign_check_changes(
    *,
    campaign: Campaign,
    campaign_id: str | None = None,
    environment: str | None = None,
    passcode: str | None = None,
    **other_fields: object,
) -> CheckOutcome:
    """Check a saved campaign as it would be with these changes (a form about to be saved):
    its stored passcode unless a new one is given. The other fields (name, notes...) play no
    part in the check. Writes nothing."""
    candidate = Campaign(
        pk=campaign.pk,
        campaign_id=campaign.campaign_id if campaign_id is None else campaign_id,
        environment=campaign.environment if environment is None else environment,
    )
    if passcode is None:
        try:
            passcode = Campaign.objects.values_list("passcode", flat=True).get(pk=campaign.pk)
        except DecryptionError:
            return CheckOutcome(ok=None, message=UNREADABLE_WORDS, at=timezone.now())
    candidate.passcode = passcode
    return campaign_credentials_check(campaign=candidate)


def campaign_check(*, campaign: Campaign, actor: User | None) -> CheckOutcome:
    """Check a saved campaign's credentials with Mokugift and record the outcome."""
    outcome = campaign_credentials_check(campaign=campaign)
    campaign_check_record(campaign=campaign, actor=actor, outcome=outcome)
    return outcome
