"""Finding what a request names, among what its person may see: anything else is a 404 that
says no more than "not one of yours" (a 403 would tell that it exists)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest

from api.errors import ApiProblem
from campaigns.models import Campaign
from campaigns.selectors import campaigns_visible_to, visible_only
from rewards.models import Batch


def campaign_find(request: HttpRequest, ref: str, *, field: str = "campaign") -> Campaign:
    """By Mokugift campaign ID; `production:ID` or `sandbox:ID` where one ID is in both."""
    environment, _, campaign_id = ref.rpartition(":")
    found = campaigns_visible_to(user=request.user).filter(campaign_id=campaign_id)
    if environment:
        found = found.filter(environment=environment)
    campaigns = list(found[:3])
    if not campaigns:
        raise ApiProblem(
            "not-found",
            f"No campaign {ref!r} among yours.",
            errors=[(field, "No campaign with this Mokugift campaign ID among yours.")],
        )
    if len(campaigns) > 1:
        both = " and ".join(f"{c.environment}:{c.campaign_id}" for c in campaigns)
        raise ApiProblem(
            "invalid",
            f"Campaign ID {ref!r} is in more than one environment: give {both}.",
            errors=[(field, f"Ambiguous: give {both}.")],
        )
    return campaigns[0]


def batches_visible(request: HttpRequest) -> QuerySet[Batch]:
    batches = Batch.objects.select_related("campaign", "created_by", "decided_by").defer(
        "campaign__passcode", "campaign__notes"
    )
    return visible_only(batches, user=request.user)


def batch_find(request: HttpRequest, batch_id: int) -> Batch:
    batch = batches_visible(request).filter(pk=batch_id).first()
    if batch is None:
        raise ApiProblem("not-found", f"No batch {batch_id} among yours.")
    return batch
