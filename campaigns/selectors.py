from __future__ import annotations

from django.db.models import Case, QuerySet, Value, When

from campaigns.models import Campaign, CampaignAuditEvent


def campaigns_for_list() -> QuerySet[Campaign]:
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
