from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypedDict

from django.db.models import Case, QuerySet, Value, When

from campaigns.models import Campaign, CampaignAuditEvent

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


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


def campaign_history(*, campaign: Campaign) -> QuerySet[CampaignAuditEvent]:
    return campaign.audit_events.select_related("actor")


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
