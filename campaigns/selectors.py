from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from django.db.models import Case, Model, QuerySet, Value, When

from audit.models import AuditEvent, Kind
from campaigns.models import (
    Approval,
    Campaign,
    CampaignAccess,
    Environment,
    check_verdict,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django_stubs_ext import WithAnnotations

    from rewards.models import Batch

    Person = User | AnonymousUser


class HasPasscode(TypedDict):
    has_passcode: bool


def campaigns_for_list() -> QuerySet[WithAnnotations[Campaign, HasPasscode]]:
    """Campaigns for a list page: the passcode is never loaded, only whether one is set."""
    return (
        Campaign.objects.defer("passcode")
        .annotate(has_passcode=Case(When(passcode="", then=Value(False)), default=Value(True)))
        .select_related("created_by")
    )


def campaigns_enabled() -> QuerySet[Campaign]:
    return Campaign.objects.filter(enabled=True).defer("passcode")


# --- Who sees which campaigns -------------------------------------------------------------

# A person without a CampaignAccess row has every campaign. Least privilege would say none, but
# until people are invited through a Team page that chooses their campaigns, the people made
# with createsuperuser, the Django admin or demo_setup would open a dashboard with nothing in
# it. Every person who existed before per-campaign access has an explicit row (migration 0005),
# so turning this to False later narrows only those made without a choice.
ACCESS_WITHOUT_A_ROW_IS_ALL = True

# What makes an admin (migration 0002_roles gives it to the Admin role alone).
ADMIN_PERMISSION = "campaigns.manage_campaigns"
# What makes an approver of other people's batches (Managers and Admins, migration 0007).
APPROVE_PERMISSION = "campaigns.approve_batches"

# Where the answer is kept on the user object for the rest of the request.
_CACHE = "_campaign_ids_visible"


def user_is_admin(*, user: Person) -> bool:
    """An admin sees every campaign and may steer every batch, whatever their campaign access
    says: whoever manages the campaigns (the Admin role; a superuser). Read from the
    permissions Django keeps on the user for the request, so it costs no query of its own."""
    return user.is_active and user.has_perm(ADMIN_PERMISSION)


def campaign_ids_visible_to(*, user: Person) -> tuple[int, ...] | None:
    """The campaigns this person may see, send on, browse, report and export: None for every
    campaign (an admin, or a person given all), else their numbers (maybe none).

    The one answer to "which campaigns may this person see": every page, list, count, export
    and service that a person reaches asks it. Kept on the user object, so a request asks the
    database once."""
    if hasattr(user, _CACHE):
        cached: tuple[int, ...] | None = getattr(user, _CACHE)
        return cached
    ids: tuple[int, ...] | None
    if not user.is_authenticated or not user.is_active:
        ids = ()
    elif user_is_admin(user=user):
        ids = None
    else:
        rows = list(
            CampaignAccess.objects.filter(user_id=user.pk).values_list("all_campaigns", "campaigns")
        )
        if not rows:
            ids = None if ACCESS_WITHOUT_A_ROW_IS_ALL else ()
        elif rows[0][0]:
            ids = None
        else:
            ids = tuple(sorted(pk for _, pk in rows if pk is not None))
    setattr(user, _CACHE, ids)
    return ids


def campaigns_visible_to(*, user: Person) -> QuerySet[Campaign]:
    """The campaigns this person may see (see campaign_ids_visible_to), without passcodes."""
    campaigns = Campaign.objects.defer("passcode")
    ids = campaign_ids_visible_to(user=user)
    return campaigns if ids is None else campaigns.filter(pk__in=ids)


def campaign_visible_to(*, user: Person, campaign_pk: int | None) -> bool:
    ids = campaign_ids_visible_to(user=user)
    return ids is None or campaign_pk in ids


def visible_only[M: Model](
    queryset: QuerySet[M], *, user: Person, field: str = "campaign_id"
) -> QuerySet[M]:
    """The rows of `queryset` on a campaign this person may see; `field` leads from a row to
    its campaign's number ("campaign_id", "batch__campaign_id", "pk" for campaigns)."""
    ids = campaign_ids_visible_to(user=user)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{field}__in": ids})


def campaign_access_forget(*, user: Person) -> None:
    """Drop the answer kept on the user object (after their access changed)."""
    if hasattr(user, _CACHE):
        delattr(user, _CACHE)


def campaign_history(*, campaign: Campaign) -> QuerySet[AuditEvent]:
    """The campaign's changes and checks, newest first, from the one audit trail."""
    return AuditEvent.objects.filter(campaign=campaign, kind__startswith="campaign.")


# Our own numbers: ASCII digits (str.isdigit() also takes "²"), as many as a bigint holds.
_NUMBER = re.compile(r"[0-9]{1,18}")


def campaign_by_reference(*, ref: str) -> Campaign:
    """The campaign a command line names: by Mokugift campaign ID, or by our own number when
    no campaign has that ID. Without its passcode. LookupError says what did not fit."""
    found = list(Campaign.objects.filter(campaign_id=ref).defer("passcode"))
    if not found and _NUMBER.fullmatch(ref):
        found = list(Campaign.objects.filter(pk=int(ref)).defer("passcode"))
    if not found:
        raise LookupError(f"No campaign with the Mokugift ID (or number) {ref!r}.")
    if len(found) > 1:
        listed = ", ".join(f"{c.pk} ({c.environment})" for c in found)
        raise LookupError(
            f"Campaign ID {ref!r} exists in more than one environment: {listed}. "
            "Give the campaign's number instead."
        )
    return found[0]


# --- History, in words --------------------------------------------------------------------

# The words of the campaign form, for the fields the history speaks of.
_FIELD_WORDS = {
    "name": "Display name",
    "campaign_id": "Mokugift campaign ID",
    "environment": "Environment",
    "enabled": "Enabled",
    "notes": "Notes",
    "approval": "Approval by a second person",
    "approval_above": "Approval above",
    "monthly_budget": "Monthly budget",
    "monthly_budget_per_person": "Monthly budget per person",
}
# Long text: the history says that it changed, not what it holds.
_SAID_CHANGED_ONLY = {"notes"}


@dataclass(frozen=True)
class HistoryEntry:
    at: dt.datetime
    actor: str
    what: str  # the action, e.g. "Updated"
    sentences: list[str]


def _value_words(field: str, value: object) -> str:
    if field == "enabled":
        return "yes" if value else "no"
    if field == "environment" and value in Environment.values:
        return Environment(value).label
    if field == "approval" and value in Approval.values:
        return Approval(value).label.lower()
    return str(value)


def _change_sentence(field: str, old: object, new: object) -> str:
    label = _FIELD_WORDS.get(field, field.replace("_", " ").capitalize())
    if field == "enabled":
        if old is None:
            return f"{label}: {_value_words(field, new)}"
        return f"{label}: {_value_words(field, old)} → {_value_words(field, new)}"
    if new in (None, ""):
        return f"{label} cleared"
    if field in _SAID_CHANGED_ONLY:
        return f"{label} set" if old in (None, "") else f"{label} changed"
    if old in (None, ""):
        return f"{label} set to {_value_words(field, new)}"
    return f"{label}: {_value_words(field, old)} → {_value_words(field, new)}"


# What the history calls each kind of change (the trail's own labels name the campaign).
_WHAT = {
    Kind.CAMPAIGN_CREATED: "Created",
    Kind.CAMPAIGN_UPDATED: "Updated",
    Kind.PASSCODE_REPLACED: "Passcode replaced",
    Kind.CAMPAIGN_ENABLED: "Enabled",
    Kind.CAMPAIGN_DISABLED: "Disabled",
    Kind.KEY_ROTATED: "Passcode re-encrypted under a new key",
    Kind.CAMPAIGN_CHECKED: "Connection checked",
}


def _event_sentences(event: AuditEvent) -> list[str]:
    changes = event.detail if isinstance(event.detail, dict) else {}
    if event.kind == Kind.CAMPAIGN_CHECKED:
        verdict = check_verdict(changes.get("ok"))
        message = changes.get("message") or ""
        return [f"{verdict}: {message}" if message else verdict]
    if event.kind == Kind.KEY_ROTATED:
        return ["Passcode re-encrypted under the newest key; the passcode itself is unchanged"]
    sentences = []
    created = event.kind == Kind.CAMPAIGN_CREATED
    # The form's order, then anything else a future change may record.
    fields = [f for f in _FIELD_WORDS if f in changes] + sorted(
        f for f in changes if f not in _FIELD_WORDS and f != "credential_replaced"
    )
    for field in fields:
        change = changes[field]
        if isinstance(change, list | tuple) and len(change) == 2:
            old, new = change
            if created and field in _SAID_CHANGED_ONLY and not new:
                continue
            sentences.append(_change_sentence(field, old, new))
    if changes.get("credential_replaced"):
        sentences.append("Passcode set" if created else "Passcode changed")
    return sentences


def campaign_history_in_words(*, campaign: Campaign) -> list[HistoryEntry]:
    """The campaign's audit events as sentences ("Enabled: no → yes", "Passcode changed"),
    newest first. Never a passcode: the events hold none."""
    return [
        HistoryEntry(
            at=event.at,
            actor=event.actor_name or "command line",
            what=_WHAT.get(Kind(event.kind), event.get_kind_display()),
            sentences=_event_sentences(event),
        )
        for event in campaign_history(campaign=campaign)
    ]


# --- What disabling stops -----------------------------------------------------------------


@dataclass(frozen=True)
class UnfinishedBatches:
    sending: list[Batch]
    paused: list[Batch]


def campaign_unfinished_batches(*, campaign: Campaign, limit: int = 20) -> UnfinishedBatches:
    """The campaign's batches still sending and those paused, newest first: disabling the
    campaign stops neither (the sending worker does not look at `enabled`)."""
    batches = campaign.batches.order_by("-pk")
    State = batches.model.State
    return UnfinishedBatches(
        sending=list(batches.filter(state=State.SENDING)[:limit]),
        paused=list(batches.filter(state=State.PAUSED)[:limit]),
    )
