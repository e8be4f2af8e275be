"""The mirror: rewards with the rewards page's filters (its own form, so that the two can
never differ), a page at a time; the same filter as CSV; the monthly report as JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

from django.contrib.auth import get_user_model
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Field as NinjaField
from ninja import Query, Router, Schema, Status

from api.auth import permission_require, scope_require
from api.errors import invalid
from api.models import Scope
from api.routes.lookups import campaign_find
from api.routes.openapi import CSV, ERRORS
from api.schemas import MonthOut, ReportOut, RewardOut, RewardPage
from campaigns.selectors import campaign_ids_visible_to
from rewards.forms import RewardFilterForm
from rewards.models import MirroredReward
from rewards.selectors import mirror as selectors
from rewards.services import export

router = Router(tags=["rewards and reports"])


class RewardQuery(Schema):
    campaign: str = NinjaField("", max_length=120, description="A Mokugift campaign ID.")
    month: str = NinjaField("", max_length=7, description="YYYY-MM")
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    source: Literal["", "dashboard", "elsewhere"] = ""
    batch: int | None = NinjaField(None, ge=1, le=2**31 - 1)
    sender: str = NinjaField("", max_length=150, description="The username who sent it.")
    q: str = NinjaField("", max_length=200, description="Part of an email, an ID or a name.")
    missing: bool = False
    order: Literal["newest", "oldest"] = "newest"


def _filters(request: HttpRequest, query: RewardQuery) -> selectors.RewardFilters:
    """The rewards page's form, given the API's names: a campaign by its Mokugift ID, a
    sender by username. Its errors are the API's 422s, field by field."""
    visible = campaign_ids_visible_to(user=request.user)
    data = {
        key: value
        for key, value in query.dict().items()
        if value not in ("", None, False) and key not in ("campaign", "sender")
    }
    if query.campaign:
        data["campaign"] = campaign_find(request, query.campaign).pk
    if query.sender:
        sender = get_user_model().objects.filter(username=query.sender).first()
        if sender is None:
            raise invalid([("sender", f"No person {query.sender!r}.")])
        data["sender"] = sender.pk
    choices = selectors.filter_choices(visible_ids=visible)
    form = RewardFilterForm(data, choices=choices)
    if not form.is_valid():
        raise invalid(
            [
                ("query" if field == "__all__" else field, str(message))
                for field, messages in form.errors.items()
                for message in messages
            ]
        )
    return dataclasses.replace(form.filters(), visible_ids=visible)


class _Elsewhere:
    name = ""
    batch_id = None


def _sent_from_here(reward):
    """Its ledger row, or blanks for a reward sent elsewhere."""
    return reward.send or _Elsewhere


def _reward_out(reward: MirroredReward) -> RewardOut:
    send = reward.send  # None: sent elsewhere, not from here
    return RewardOut(
        id=reward.pk,
        reward_id=reward.remote_id,
        date=reward.date,
        recipient_email=reward.recipient_email,
        recipient_id=reward.recipient_id,
        trees=reward.tree_count,
        campaign=reward.campaign.campaign_id,
        name=send.name if send is not None else "",
        batch=send.batch_id if send is not None else None,
        missing_since=reward.missing_since,
    )


@router.get("/rewards", response={200: RewardPage, **ERRORS}, summary="Rewards of the mirror")
def reward_list(
    request: HttpRequest,
    query: Query[RewardQuery],
    cursor: str = Query("", max_length=200),
    limit: int = Query(50, ge=1, le=500),
):
    scope_require(request, Scope.READ)
    permission_require(request, "campaigns.view_reports", "browse rewards")
    filters = _filters(request, query)
    if cursor and selectors.cursor_decode(cursor) is None:
        raise invalid([("cursor", "Not a cursor this API gave.")])
    page = selectors.rewards_page(
        rewards=selectors.rewards_filter(filters=filters),
        newest_first=filters.newest_first,
        cursor=cursor,
        size=limit,
    )
    later = page.older if filters.newest_first else page.newer
    return Status(
        200,
        RewardPage(
            rewards=[_reward_out(reward) for reward in page.rows],
            next_cursor=later,
        ),
    )


@router.get(
    "/rewards/export.csv",
    response=ERRORS,
    summary="The rewards of a filter as CSV, as the rewards page's download",
    openapi_extra=CSV,
)
def reward_export(request: HttpRequest, query: Query[RewardQuery]):
    scope_require(request, Scope.REPORTS)
    permission_require(request, "campaigns.export_rewards", "export rewards")
    filters = _filters(request, query)
    export.export_record(
        actor=request.user,
        what="rewards",
        fmt="csv",
        filters=query.dict(),
        allowed=RewardQuery.model_fields,
        request=request,
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        export.rewards_csv(rewards=selectors.rewards_filter(filters=filters)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="rewards-{stamp}.csv"'
    return response


def _month(row: selectors.MonthRow) -> MonthOut:
    return MonthOut(
        month=row.month,
        mokugift_rewards=row.mokugift_rewards,
        mokugift_trees=row.mokugift_trees,
        ours_rewards=row.ours_rewards,
        ours_trees=row.ours_trees,
        ledger_not_in_mokugift=row.ledger_not_in_mokugift,
        elsewhere=row.elsewhere,
        paid_twice=row.paid_twice,
        synced_at=row.synced_at,
    )


@router.get(
    "/reports/monthly",
    response={200: ReportOut, **ERRORS},
    summary="The monthly report of a year: Mokugift's counts beside ours, month by month",
)
def report_monthly(
    request: HttpRequest,
    year: int = Query(..., ge=2000, le=2100),
    campaign: str = Query("", max_length=120),
):
    scope_require(request, Scope.REPORTS)
    permission_require(request, "campaigns.view_reports", "read reports")
    found = campaign_find(request, campaign) if campaign else None
    report = selectors.report_for_year(
        year=year,
        campaign_ids=(found.pk,) if found else (),
        visible_ids=campaign_ids_visible_to(user=request.user),
    )
    return Status(
        200,
        ReportOut(
            year=year,
            campaign=found.campaign_id if found else None,
            months=[_month(row) for row in report.months],
            totals=_month(report.totals),
        ),
    )
