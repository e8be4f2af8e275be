"""Batches: the list, one batch with live progress and its results, and the results CSV."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_POST

from rewards.models import Batch, Send
from rewards.selectors import backoff as backoff_selectors
from rewards.selectors import sending as sending_selectors
from rewards.services import sending
from rewards.services.export import text_safe
from rewards.views import send_rewards_required

RESULTS_PER_PAGE = 100
BATCHES_PER_PAGE = 25
# The states the progress shows, in the order a row goes through them.
PROGRESS_STATES = [
    Send.State.WAITING,
    Send.State.SENDING,
    Send.State.SENT,
    Send.State.FAILED,
    Send.State.UNKNOWN,
    Send.State.CANCELLED,
]
# Rows that will not move again unless someone acts (retry failed, resume).
FINISHED_STATES = {Send.State.SENT, Send.State.FAILED, Send.State.CANCELLED}
RESULTS_COLUMNS = ["row", "recipient", "name", "state", "reward_id", "url", "error"]
LINK_NOT_RECOVERED = (
    "Link not recovered: the reward was made (see its ID), but Mokugift does not give its "
    "URL back; find it in the Mokugift dashboard."
)


def _batches() -> QuerySet[Batch]:
    # The campaign's passcode is never loaded by a page.
    return Batch.objects.select_related("campaign", "created_by", "send_anyway_by").defer(
        "campaign__passcode"
    )


def _batch(pk: int) -> Batch:
    return get_object_or_404(_batches(), pk=pk)


def batch_progress_data(*, batch: Batch) -> dict:
    """What the batch page shows live: counts by state, percent done, time left."""
    progress = sending_selectors.batch_progress(batch=batch)
    counts = {state.value: progress.counts.get(state.value, 0) for state in PROGRESS_STATES}
    sending = batch.state == Batch.State.SENDING and progress.finished < progress.total
    eta = progress.eta_seconds if sending else None
    return {
        "state": batch.state,
        "state_label": batch.get_state_display(),
        "paused_reason": batch.paused_reason,
        # Why rows wait while the batch is sending: its campaign is backed off.
        "backoff_note": backoff_selectors.campaign_backoff_note(campaign_id=batch.campaign_id)
        if sending
        else "",
        "counts": counts,
        "total": progress.total,
        "finished": progress.finished,
        "percent": progress.percent,
        "eta_seconds": None if eta is None else max(1, round(eta)),
    }


def _results(*, batch: Batch, state: str) -> QuerySet[Send]:
    """One queryset for the table and the CSV, so that the file matches the screen."""
    rows = batch.sends.order_by("row_number")
    if state:
        rows = rows.filter(state=state)
    return rows


def _state_filter(request) -> str:
    state = request.GET.get("state", "")
    return state if state in Send.State.values else ""


@send_rewards_required
def batch_list(request):
    batches = (
        _batches()
        .order_by("-created_at", "-pk")
        .annotate(
            total=Count("sends"),
            finished=Count("sends", filter=Q(sends__state__in=FINISHED_STATES)),
            sent=Count("sends", filter=Q(sends__state=Send.State.SENT)),
            failed=Count("sends", filter=Q(sends__state=Send.State.FAILED)),
            unknown=Count("sends", filter=Q(sends__state=Send.State.UNKNOWN)),
        )
    )
    page = Paginator(batches, BATCHES_PER_PAGE).get_page(request.GET.get("page"))
    for batch in page:
        batch.percent = batch.finished * 100 // batch.total if batch.total else 0
    return render(request, "rewards/batch_list.html", {"page": page})


@send_rewards_required
def batch_detail(request, pk: int):
    batch = _batch(pk)
    progress = batch_progress_data(batch=batch)
    counts = progress["counts"]
    state = _state_filter(request)
    page = Paginator(_results(batch=batch, state=state), RESULTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    single = batch.sends.first() if batch.source == Batch.Source.SINGLE else None
    return render(
        request,
        "rewards/batch_detail.html",
        {
            "batch": batch,
            "progress": progress,
            # The page stops polling (the same test as batch.js's, or it would reload forever).
            "finished": batch.state in (Batch.State.DONE, Batch.State.CANCELLED)
            or progress["percent"] == 100,
            "counts": counts,
            "states": [(s.value, s.label, counts[s.value]) for s in PROGRESS_STATES],
            "state": state,
            "page": page,
            "single": single,
            "link_mode": batch.mode != "email",
            "link_not_recovered": LINK_NOT_RECOVERED,
        },
    )


@send_rewards_required
def batch_progress(request, pk: int):
    """The small JSON the batch page polls every second."""
    batch = _batch(pk)
    data = batch_progress_data(batch=batch)
    if batch.source == Batch.Source.SINGLE:
        row = batch.sends.first()
        data["single"] = row and {
            "state": row.state,
            "state_label": row.get_state_display(),
            "remote_id": row.remote_id,
            "url": row.url,
            "link_not_recovered": row.link_not_recovered,
            "error": row.error_message,
        }
    return JsonResponse(data)


class _Echo:
    def write(self, value: str) -> str:
        return value


@send_rewards_required
def batch_results_csv(request, pk: int):
    batch = _batch(pk)
    rows = _results(batch=batch, state=_state_filter(request))
    writer = csv.writer(_Echo())

    def lines():
        yield "\ufeff"  # so that Excel reads the names as UTF-8
        yield writer.writerow(RESULTS_COLUMNS)
        for send in rows.iterator(chunk_size=2_000):
            error = send.error_message
            if send.error_code and error:
                error = f"{error} (Mokugift error {send.error_code})"
            if send.link_not_recovered:
                error = LINK_NOT_RECOVERED
            yield writer.writerow(
                [
                    send.row_number,
                    text_safe(send.recipient),
                    text_safe(send.name),
                    send.state,
                    text_safe(send.remote_id),
                    text_safe(send.url),
                    text_safe(error),
                ]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}-results.csv"'
    return response


@require_POST
@send_rewards_required
def batch_cancel(request, pk: int):
    cancelled = sending.batch_cancel(batch=_batch(pk), actor=request.user)
    messages.success(
        request,
        f"Batch cancelled: {cancelled} row{pluralize(cancelled)} not yet claimed will not be "
        "sent. Rows already on their way finish.",
    )
    return redirect("rewards:batch_detail", pk=pk)


@require_POST
@send_rewards_required
def batch_resume(request, pk: int):
    if sending.batch_resume(batch=_batch(pk), actor=request.user):
        messages.success(request, "Batch resumed: the waiting rows are being sent.")
    else:
        messages.info(request, "The batch was not paused, so there was nothing to resume.")
    return redirect("rewards:batch_detail", pk=pk)


@require_POST
@send_rewards_required
def batch_retry_failed(request, pk: int):
    batch = _batch(pk)
    again = sending.batch_retry_failed(batch=batch, actor=request.user)
    if again:
        messages.success(request, f"{again} failed row{pluralize(again)} sent again.")
    elif batch.state == Batch.State.CANCELLED:
        messages.info(
            request,
            "This batch was cancelled, so its failed rows are not sent again. "
            "Send them as a new batch (the results CSV, filtered to failed rows, is a start).",
        )
    else:
        messages.info(request, "No row had failed, so there was nothing to send again.")
    return redirect("rewards:batch_detail", pk=pk)
