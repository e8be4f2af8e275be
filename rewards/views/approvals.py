"""Approvals: the batches waiting for a second person, and the decisions about them; and
moving a batch that has not started to another time. The rules are the services'
(rewards/services/controls.py): these views only ask them."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from rewards.forms import DeclineForm, RescheduleForm
from rewards.selectors.approvals import batches_awaiting_approval
from rewards.services import controls
from rewards.views import approve_batches_required, send_rewards_required
from rewards.views.batches import _batch, _steerable

APPROVALS_PER_PAGE = 25


@approve_batches_required
def approval_list(request):
    batches = batches_awaiting_approval(user=request.user).annotate(rows=Count("sends"))
    page = Paginator(batches, APPROVALS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "rewards/approval_list.html",
        {
            "page": page,
            "rows": [
                (batch, controls.batch_may_be_approved_by(batch=batch, user=request.user))
                for batch in page
            ],
        },
    )


def _decision(request, pk: int, decide) -> object:
    batch = _batch(request, pk)
    try:
        # PermissionDenied (the maker, or no approver) goes up as a 403 with the service's words.
        decide(batch)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("rewards:batch_detail", pk=pk)


@require_POST
@approve_batches_required
def batch_approve(request, pk: int):
    def approve(batch):
        batch = controls.batch_approve(batch=batch, actor=request.user)
        when = (
            f"It goes out at {timezone.localtime(batch.send_at):%Y-%m-%d %H:%M}."
            if batch.state == batch.State.SCHEDULED
            else "It is being sent."
        )
        messages.success(request, f"Batch #{batch.pk} approved. {when}")

    return _decision(request, pk, approve)


@require_POST
@approve_batches_required
def batch_decline(request, pk: int):
    form = DeclineForm(request.POST)

    def decline(batch):
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        controls.batch_decline(batch=batch, actor=request.user, reason=reason)
        messages.success(request, f"Batch #{batch.pk} declined: none of it will be sent.")

    return _decision(request, pk, decline)


@require_POST
@send_rewards_required
def batch_reschedule(request, pk: int):
    batch = _steerable(request, pk)
    form = RescheduleForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for e in form.errors["send_at"]))
        return redirect("rewards:batch_detail", pk=pk)
    try:
        batch = controls.batch_reschedule(
            batch=batch, actor=request.user, send_at=form.cleaned_data["send_at"]
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("rewards:batch_detail", pk=pk)
    if batch.send_at is None:
        messages.success(request, f"Batch #{pk} now goes out at once.")
    else:
        messages.success(
            request,
            f"Batch #{pk} now goes out at {timezone.localtime(batch.send_at):%Y-%m-%d %H:%M}.",
        )
    return redirect("rewards:batch_detail", pk=pk)
