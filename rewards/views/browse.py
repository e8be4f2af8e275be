"""The rewards page (the mirror, filtered and searched, by keyset pages), one reward, its CSV,
the Refresh button and the sync status the page polls."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

from django.contrib import messages
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns.selectors import campaign_ids_visible_to, campaigns_visible_to
from rewards.forms import RewardFilterForm
from rewards.selectors import mirror as selectors
from rewards.services import export, sync
from rewards.views import export_rewards_required, view_reports_required


def _choices(request) -> selectors.FilterChoices:
    return selectors.filter_choices(visible_ids=campaign_ids_visible_to(user=request.user))


def _form(request) -> tuple[RewardFilterForm, selectors.RewardFilters]:
    """The filter form and its filters, within the campaigns this person may see: the menu
    offers only those (another campaign's number is left out, as not a choice), and the
    filters hold only their rewards, for the table, the counts and the CSV alike."""
    visible = campaign_ids_visible_to(user=request.user)
    form = RewardFilterForm(request.GET or None, choices=_choices(request))
    if not request.GET:
        return form, selectors.RewardFilters(visible_ids=visible)
    form.is_valid()
    return form, dataclasses.replace(form.filters(), visible_ids=visible)


def _query_without(request, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


@view_reports_required
def reward_list(request):
    form, filters = _form(request)
    refused = form.is_bound and form.refused()
    cursor = request.GET.get("cursor", "")
    day = form.cleaned_data.get("day") if form.is_bound else None
    if day and not cursor:
        cursor = selectors.cursor_for_day(day=day, newest_first=filters.newest_first)
    rewards = selectors.rewards_filter(filters=filters)
    if refused:
        # Nothing to count or show: the page says why, on the form.
        page, total, more = selectors.RewardPage(rows=[]), 0, False
    else:
        page = selectors.rewards_page(
            rewards=rewards, newest_first=filters.newest_first, cursor=cursor
        )
        total, more = selectors.rewards_count(rewards=rewards)
    runs = selectors.sync_runs_latest(
        campaign_ids=list(filters.campaign_ids), visible_ids=filters.visible_ids
    )
    summary = form.summary()
    return render(
        request,
        "rewards/list.html",
        {
            "form": form,
            "page": page,
            "total": total,
            "more": more,
            "count_limit": selectors.COUNT_LIMIT,
            "refused": refused,
            "summary": summary,
            # Open the folded filters where something on them needs reading.
            "filters_open": any(name != "day" for name in form.errors),
            "filtered": bool(_query_without(request, "cursor", "order", "day")),
            "query": _query_without(request, "cursor", "day"),
            # What the "Go to date" form carries along: the filters, not where the page was.
            "keep": [
                (name, value)
                for name, values in request.GET.lists()
                if name not in ("cursor", "day")
                for value in values
            ],
            "runs": runs,
            "running": any(run.outcome == run.Outcome.RUNNING for run in runs),
            # The reward pages' common start, reversed once: a {% url %} per row was a seventh
            # of the page's time.
            "detail_prefix": reverse("rewards:reward_detail", args=[0]).removesuffix("0/"),
        },
    )


@view_reports_required
def reward_detail(request, pk: int):
    # Another campaign's reward is not found, as if it did not exist.
    reward = selectors.reward_get(pk=pk, visible_ids=campaign_ids_visible_to(user=request.user))
    if reward is None:
        raise Http404("No such reward in the mirror.")
    events = list(reward.send.events.all()) if reward.send is not None else []
    return render(request, "rewards/reward_detail.html", {"reward": reward, "events": events})


@export_rewards_required
def reward_list_csv(request):
    _, filters = _form(request)
    rewards = selectors.rewards_filter(filters=filters)
    export.export_record(
        actor=request.user,
        what="rewards",
        fmt="csv",
        filters=request.GET,
        allowed=RewardFilterForm.base_fields,
        request=request,
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        export.rewards_csv(rewards=rewards), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="rewards-{stamp}.csv"'
    return response


@require_POST
@view_reports_required
def sync_refresh(request):
    """Queue a sync of the month on screen (or this month) for the campaign on screen (or all
    enabled ones this person may see), and come straight back: the page follows the run by
    polling."""
    form = RewardFilterForm(request.POST, choices=_choices(request))
    form.is_valid()
    campaign = form.cleaned_data.get("campaign")
    year_month = form.cleaned_data.get("month")
    now = timezone.now().astimezone(dt.UTC)
    year, month = year_month or (now.year, now.month)
    campaigns = campaigns_visible_to(user=request.user).filter(enabled=True)
    if campaign:
        campaigns = campaigns.filter(pk=campaign)
    ids = list(campaigns.values_list("pk", flat=True))
    sync.sync_enqueue(campaign_ids=ids, year=year, month=month)
    if request.headers.get("HX-Request") == "true":
        # The button, with JavaScript: the sync status in place, following the queued run.
        return _sync_status_render(request, data=request.POST, since=time.time() if ids else None)
    if ids:
        messages.success(
            request,
            f"Refresh of {year}-{month:02d} queued for {len(ids)} campaign(s). "
            "This page shows it when it starts.",
        )
    else:
        messages.warning(request, "No enabled campaign to refresh.")
    # Back to the same filter: `next` is the page's own query string, never a URL.
    return redirect(reverse("rewards:list") + "?" + request.POST.get("next", "").lstrip("?"))


def _sync_status_render(request, *, data, since: float | None = None):
    """The sync status fragment alone (rewards/_sync_status.html), as the rewards page includes
    it: `campaign`, `month` and `next` (the page's query) say which page it belongs to."""
    try:
        campaign_id = int(data["campaign"]) if data.get("campaign") else None
    except ValueError:
        campaign_id = None
    runs = selectors.sync_runs_latest(
        campaign_ids=[campaign_id] if campaign_id else [],
        visible_ids=campaign_ids_visible_to(user=request.user),
    )
    return render(
        request,
        "rewards/_sync_status.html",
        {
            "runs": runs,
            "campaign_id": campaign_id,
            "month": data.get("month", "")[:7],
            "query": data.get("next", "").lstrip("?"),
            "since": since if since is not None else data.get("since", ""),
            "follow": data.get("follow", ""),
        },
    )


@view_reports_required
def sync_status(request):
    """The sync status of the rewards page, rendered from the same template as the page's own,
    which htmx polls while a run goes on (or a queued one has not started)."""
    return _sync_status_render(request, data=request.GET)
