"""Batches: the list, one batch with live progress and its results, and the results CSV.

The live part of the batch page is one template partial (`batch_detail.html#live`), rendered
for the first load by `batch_detail` and for each poll by `batch_status`."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Case, Count, F, Q, QuerySet, Value, When
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns.selectors import visible_only
from rewards.forms import DeclineForm, RescheduleForm, UnknownRowsForm
from rewards.models import Batch, Send
from rewards.models.ledger import FINISHED_STATES
from rewards.selectors import backoff as backoff_selectors
from rewards.selectors import sending as sending_selectors
from rewards.services import controls, reconcile, sending
from rewards.services.export import LINK_NOT_RECOVERED, batch_results_csv, export_record
from rewards.views import batches_required, send_rewards_required

RESULTS_PER_PAGE = 100
# A scheduled batch that went out this much after its time was late (approved after it).
LATE_SECONDS = 90
BATCHES_PER_PAGE = 25
UPCOMING_SHOWN = 50
# The states the progress shows, in the order a row goes through them.
PROGRESS_STATES = [
    Send.State.WAITING,
    Send.State.SENDING,
    Send.State.SENT,
    Send.State.FAILED,
    Send.State.UNKNOWN,
    Send.State.CANCELLED,
]


def _batches(request) -> QuerySet[Batch]:
    """The batches of the campaigns this person may see (all of theirs, whoever made them)."""
    # The campaign's passcode is never loaded by a page.
    batches = Batch.objects.select_related("campaign", "created_by", "send_anyway_by").defer(
        "campaign__passcode"
    )
    return visible_only(batches, user=request.user)


def _batch(request, pk: int) -> Batch:
    """A batch of a campaign this person may see; any other is a 404, as if it did not exist
    (a 403 would tell that it does)."""
    return get_object_or_404(_batches(request), pk=pk)


def _steerable(request, pk: int) -> Batch:
    """A batch this person may cancel, resume or retry: a 404 if they may not see it, a 403
    (with the reason) if they see it but did not make it and are no admin."""
    batch = _batch(request, pk)
    if not sending.batch_steerable_by(batch=batch, user=request.user):
        raise PermissionDenied(sending.ONLY_ITS_CREATOR)
    return batch


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
        "backoff_note": backoff_selectors.campaign_backoff_note(campaign_pk=batch.campaign_id)
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


@batches_required
def batch_list(request):
    batches = (
        _batches(request)
        .order_by("-created_at", "-pk")
        .annotate(
            total=Count("sends"),
            finished=Count("sends", filter=Q(sends__state__in=FINISHED_STATES)),
            sent=Count("sends", filter=Q(sends__state=Send.State.SENT)),
            failed=Count("sends", filter=Q(sends__state=Send.State.FAILED)),
            unknown=Count("sends", filter=Q(sends__state=Send.State.UNKNOWN)),
            paid_twice=Count("sends", filter=Q(sends__paid_twice_at__isnull=False)),
        )
        # Whole percent, rounded down (integer division): 100 only once every row is finished.
        .annotate(
            percent=Case(When(total=0, then=Value(0)), default=F("finished") * 100 / F("total"))
        )
    )
    not_started = [Batch.State.AWAITING_APPROVAL, Batch.State.SCHEDULED]
    # Apart, above the rest: what is still to go out, soonest first, in the viewer's zone.
    upcoming = list(
        batches.filter(state__in=not_started).order_by(
            F("send_at").asc(nulls_first=True), "created_at"
        )[:UPCOMING_SHOWN]
    )
    page = Paginator(batches.exclude(state__in=not_started), BATCHES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    # Why rows failed, grouped and counted, for the whole page in one query.
    reasons = sending_selectors.batches_failure_reasons(
        batch_ids=[batch.pk for batch in page if getattr(batch, "failed", 0)]
    )
    return render(
        request,
        "rewards/batch_list.html",
        {
            "page": page,
            "rows": [(batch, reasons.get(batch.pk, [])) for batch in page],
            "upcoming": upcoming,
            "paid_twice": visible_only(
                sending_selectors.sends_paid_twice(), user=request.user, field="batch__campaign_id"
            ).count(),
        },
    )


def _batch_live_context(request, batch: Batch) -> dict:
    """What the live part of the batch page (`batch_detail.html#live`) shows: the first load
    and every poll render it from this, so the two cannot differ."""
    progress = batch_progress_data(batch=batch)
    counts = progress["counts"]
    state = _state_filter(request)
    page = Paginator(_results(batch=batch, state=state), RESULTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    # Nothing more can change by itself: the page stops polling (a batch still being
    # reconciled after a cancel included, or it would poll forever).
    finished = batch.state in (Batch.State.DONE, Batch.State.CANCELLED, Batch.State.DECLINED) or (
        progress["percent"] == 100 and batch.state != Batch.State.PAUSED
    )
    query = {"state": state} if state else {}
    if page.number > 1:
        query["page"] = str(page.number)
    return {
        "batch": batch,
        "progress": progress,
        "finished": finished,
        # "Sending" for the moment between the last row and the batch being marked done.
        "shown_state": Batch.State.DONE
        if finished and batch.state == Batch.State.SENDING
        else batch.state,
        "counts": counts,
        "states": [(s.value, s.label, counts[s.value]) for s in PROGRESS_STATES],
        "failure_reasons": sending_selectors.batch_failure_reasons(batch=batch)
        if counts[Send.State.FAILED]
        else [],
        "state": state,
        "status_query": urlencode(query),
        "page": page,
        "single": batch.sends.first() if batch.source == Batch.Source.SINGLE else None,
        "link_mode": batch.mode != "email",
        "link_not_recovered": LINK_NOT_RECOVERED,
        # Cancel, resume and retry are shown to its creator and admins only.
        "may_steer": sending.batch_steerable_by(batch=batch, user=request.user),
        **_controls_context(request, batch, rows=progress["total"]),
    }


def _controls_context(request, batch: Batch, *, rows: int) -> dict:
    """The spending controls' part of the batch page: the decision awaited, the time it goes
    out, the budget it uses."""
    waiting = batch.state in (Batch.State.AWAITING_APPROVAL, Batch.State.SCHEDULED)
    late = (
        batch.send_at is not None
        and batch.started_at is not None
        and (batch.started_at - batch.send_at).total_seconds() > LATE_SECONDS
    )
    campaign = batch.campaign
    has_budget = campaign.monthly_budget is not None
    return {
        "not_started": waiting,
        "may_approve": batch.state == Batch.State.AWAITING_APPROVAL
        and controls.batch_may_be_approved_by(batch=batch, user=request.user),
        "decline_form": DeclineForm(),
        "reschedule_form": RescheduleForm(initial={"send_at": batch.send_at}),
        "started_late": late,
        # The budget of the month it goes out in, as it stands now.
        "batch_budget": controls.budget_state(
            campaign=campaign, at=max(batch.send_at or timezone.now(), timezone.now())
        )
        if has_budget and waiting
        else None,
        "batch_rows": rows,
    }


@batches_required
def batch_detail(request, pk: int):
    batch = _batch(request, pk)
    return render(
        request,
        "rewards/batch_detail.html",
        {
            **_batch_live_context(request, batch),
            "paid_twice": list(sending_selectors.sends_paid_twice(batch=batch)[:100]),
            "unknown": sending_selectors.batch_unknown_summary(batch=batch),
            "unknown_form": UnknownRowsForm(),
            "sweep_interval": settings.MOKUGIFT_SWEEP_INTERVAL,
            "horizon_minutes": settings.MOKUGIFT_COMMIT_HORIZON / 60,
        },
    )


@batches_required
def batch_status(request, pk: int):
    """The live part of the batch page (state, counts, bar, reasons, buttons, tabs and the
    results table), which the page polls with htmx until the batch is finished."""
    batch = _batch(request, pk)
    return render(request, "rewards/batch_detail.html#live", _batch_live_context(request, batch))


@send_rewards_required
def batch_results_file(request, pk: int):
    """The batch's rows as a file. By default the whole batch: every ledger row and every upload
    row left out (state "left-out", the reason as its error), in the file's row order, so the
    file accounts for every line that was uploaded. `?state=` narrows it to one state (or to
    the left-out rows), and the file's name says so: batch-12-results-failed.csv."""
    batch = _batch(request, pk)
    export_record(
        actor=request.user,
        what="batch results",
        fmt="csv",
        filters=request.GET,
        allowed=("state",),
        campaign=batch.campaign,
        batch_pk=batch.pk,
        request=request,
    )
    results = batch_results_csv(batch=batch, state=request.GET.get("state", ""))
    response = StreamingHttpResponse(results.lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{results.filename}"'
    return response


@require_POST
@send_rewards_required
def batch_cancel(request, pk: int):
    batch = _steerable(request, pk)
    not_started = batch.state in (Batch.State.AWAITING_APPROVAL, Batch.State.SCHEDULED)
    cancelled = sending.batch_cancel(batch=batch, actor=request.user)
    if not_started:
        messages.success(request, f"Batch #{pk} withdrawn: none of its rows will be sent.")
        return redirect("rewards:batch_detail", pk=pk)
    messages.success(
        request,
        f"Batch cancelled: {cancelled} row{pluralize(cancelled)} not yet claimed will not be "
        "sent. Rows already on their way finish.",
    )
    return redirect("rewards:batch_detail", pk=pk)


@require_POST
@send_rewards_required
def batch_resume(request, pk: int):
    if sending.batch_resume(batch=_steerable(request, pk), actor=request.user):
        messages.success(request, "Batch resumed: the waiting rows are being sent.")
    else:
        messages.info(request, "The batch was not paused, so there was nothing to resume.")
    return redirect("rewards:batch_detail", pk=pk)


@require_POST
@send_rewards_required
def batch_retry_failed(request, pk: int):
    batch = _steerable(request, pk)
    try:
        again = sending.batch_retry_failed(batch=batch, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("rewards:batch_detail", pk=pk)
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


@require_POST
@send_rewards_required
def batch_unknown_check(request, pk: int):
    unknown = reconcile.sends_unknown_check_now(batch=_batch(request, pk), actor=request.user)
    if unknown:
        messages.success(
            request,
            f"Checking the {unknown} row{pluralize(unknown)} of unknown outcome with Mokugift "
            "now. A row Mokugift does not list yet stays unknown until its commit horizon.",
        )
    else:
        messages.info(request, "No row's outcome is unknown, so there was nothing to check.")
    return redirect("rewards:batch_detail", pk=pk)


@require_POST
@send_rewards_required
def batch_unknown_decide(request, pk: int):
    batch = _batch(request, pk)
    form = UnknownRowsForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("rewards:batch_detail", pk=pk)
    action, rows = form.cleaned_data["action"], form.cleaned_data["rows"]
    decide = (
        reconcile.sends_unknown_mark_failed
        if action == "failed"
        else reconcile.sends_unknown_mark_sent
    )
    moved = decide(
        batch=batch, actor=request.user, reason=form.cleaned_data["reason"], row_numbers=rows
    )
    words = "failed (not to be sent)" if action == "failed" else "sent"
    if moved:
        messages.success(
            request, f"{moved} row{pluralize(moved)} of unknown outcome marked {words}."
        )
    else:
        messages.info(
            request, "None of those rows is of unknown outcome any more: nothing changed."
        )
    return redirect("rewards:batch_detail", pk=pk)


def paid_twice_list(request):
    """Every row whose recipient got two rewards for one intended send: for those who send
    and for those who read the reports (the report's column links here)."""
    if not (
        request.user.has_perm("campaigns.send_rewards")
        or request.user.has_perm("campaigns.view_reports")
    ):
        raise PermissionDenied
    rows = visible_only(
        sending_selectors.sends_paid_twice(), user=request.user, field="batch__campaign_id"
    )
    page = Paginator(rows, RESULTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "rewards/paid_twice.html", {"page": page})
