"""Campaigns: the ones the key's person may see, never with a passcode."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from api.auth import scope_require
from api.models import Scope
from api.routes.lookups import campaign_find
from api.routes.openapi import ERRORS
from api.schemas import CampaignOut
from campaigns.models import Campaign
from campaigns.selectors import campaigns_visible_to
from rewards.services.controls import budgets_this_month

router = Router(tags=["campaigns"])


def _out(campaign: Campaign, used: int | None) -> CampaignOut:
    return CampaignOut(
        campaign=campaign.campaign_id,
        name=campaign.name,
        environment=campaign.environment,
        enabled=campaign.enabled,
        approval=campaign.approval,
        approval_above=campaign.approval_above,
        monthly_budget=campaign.monthly_budget,
        monthly_budget_per_person=campaign.monthly_budget_per_person,
        budget_used_this_month=used,
    )


@router.get("/campaigns", response={200: list[CampaignOut], **ERRORS}, summary="Your campaigns")
def campaign_list(request: HttpRequest):
    scope_require(request, Scope.READ)
    campaigns = list(campaigns_visible_to(user=request.user).defer("notes").order_by("name", "pk"))
    used = _used(campaigns)
    return Status(200, [_out(campaign, used.get(campaign.pk)) for campaign in campaigns])


@router.get("/campaigns/{campaign}", response={200: CampaignOut, **ERRORS}, summary="One campaign")
def campaign_read(request: HttpRequest, campaign: str):
    scope_require(request, Scope.READ)
    found = campaign_find(request, campaign)
    return Status(200, _out(found, _used([found]).get(found.pk)))


def _used(campaigns: list[Campaign]) -> dict[int, int]:
    """This month's reserved rows of the campaigns that have a budget, in one query."""
    pks = tuple(campaign.pk for campaign in campaigns)
    return {campaign.pk: state.used for campaign, state in budgets_this_month(campaign_ids=pks)}
