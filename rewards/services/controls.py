"""Spending controls: approval by a second person, monthly budgets and scheduled sends.

Every way of sending (the pages, the command line, later the API) goes through
`rewards.services.sending.batch_create`, which asks here; the pages only show what these say.

- **Approval** (`Campaign.needs_approval`): a batch that needs it is written *awaiting
  approval*. No chunk claims its rows (a claim needs a *sending* batch) and the sweep leaves it
  alone. An approver is a person with `campaigns.approve_batches` (Managers and Admins) who may
  see the campaign and did not make the batch: `batch_approver_check` says so, whatever the
  request says.
- **Budgets**: a batch reserves its rows in the month (UTC) it goes out, when it is confirmed
  or, if it needs approval, approved. What a month has used is the count of rows of batches
  reserved in it that did not end failed or cancelled (`budget_used`), so a failed row gives
  its reservation back without anyone writing it. The reservation locks the campaign's row
  (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's writers are serialized), so two
  confirmations at once cannot spend the same budget twice.
- **Schedules**: a batch with a `send_at` still ahead waits *scheduled*; `batches_start_due`
  (the sweep, every MOKUGIFT_SWEEP_INTERVAL seconds, and a task queued for its time) starts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from audit.models import Kind
from audit.services import audit_record
from campaigns.models import Campaign
from campaigns.selectors import APPROVE_PERMISSION, campaign_visible_to
from rewards.models import Batch, Send
from webhooks.models import Event
from webhooks.services import webhook_emit_batch

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# Rows that use their batch's budget: all but those that ended without a reward.
_NOT_SPENT = (Send.State.FAILED, Send.State.CANCELLED)
# An admin's notices: at these shares of a monthly budget.
BUDGET_THRESHOLDS = (80, 100)

NOT_AN_APPROVER = "You may not approve or decline batches on this campaign."
OWN_BATCH = "You made this batch: someone else must approve it (maker is not checker)."


def budget_month_of(moment: datetime) -> date:
    """The month whose budget a batch going out at `moment` uses: Mokugift counts in UTC."""
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def budget_used(*, campaign_pk: int, month: date, person_pk: int | None = None) -> int:
    """Rewards of the campaign's budget used (or reserved) in `month`; with `person_pk`,
    those of the batches that person made."""
    rows = Send.objects.filter(batch__campaign_id=campaign_pk, batch__budget_month=month).exclude(
        state__in=_NOT_SPENT
    )
    if person_pk is not None:
        rows = rows.filter(batch__created_by_id=person_pk)
    return rows.count()


@dataclass(frozen=True)
class BudgetState:
    """A campaign's budget this month, for the pages: None limit means no budget."""

    month: date
    limit: int | None
    used: int
    person_limit: int | None = None
    person_used: int = 0

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    @property
    def percent(self) -> int:
        if not self.limit:
            return 0
        return min(100, round(100 * self.used / self.limit))

    @property
    def person_left(self) -> int | None:
        return None if self.person_limit is None else max(0, self.person_limit - self.person_used)


def budget_state(
    *, campaign: Campaign, person: User | None = None, at: datetime | None = None
) -> BudgetState:
    month = budget_month_of(at or timezone.now())
    person_limit = campaign.monthly_budget_per_person if person is not None else None
    return BudgetState(
        month=month,
        limit=campaign.monthly_budget,
        used=budget_used(campaign_pk=campaign.pk, month=month)
        if campaign.monthly_budget is not None
        else 0,
        person_limit=person_limit,
        person_used=budget_used(campaign_pk=campaign.pk, month=month, person_pk=person.pk)
        if person is not None and person_limit is not None
        else 0,
    )


def budgets_this_month(
    *, campaign_ids: tuple[int, ...] | None
) -> list[tuple[Campaign, BudgetState]]:
    """The campaigns (of `campaign_ids`; None: all) that have a monthly budget, each with its
    state this month, in one query: for the home page."""
    month = budget_month_of(timezone.now())
    spent = Q(batches__budget_month=month) & ~Q(batches__sends__state__in=_NOT_SPENT)
    campaigns = (
        Campaign.objects.filter(monthly_budget__isnull=False)
        .defer("passcode")
        .annotate(used=Count("batches__sends", filter=spent))
        .order_by("name")
    )
    if campaign_ids is not None:
        campaigns = campaigns.filter(pk__in=campaign_ids)
    return [(c, BudgetState(month=month, limit=c.monthly_budget, used=c.used)) for c in campaigns]


def _month_words(month: date) -> str:
    current = budget_month_of(timezone.now())
    return "this month" if month == current else f"in {month:%B %Y}"


def budget_reserve(
    *,
    campaign: Campaign,
    person_pk: int | None,
    rows: int,
    month: date,
    batch_pk: int | None = None,
) -> list[int]:
    """Check that `rows` more rewards fit the campaign's budgets of `month`, holding the
    campaign's row locked until the transaction ends: the caller then writes `budget_month`
    on its batch in that same transaction. ValidationError with the numbers when they do not
    fit. `batch_pk`: a batch whose own rows are already counted there (a reschedule).

    Returns the budget thresholds (BUDGET_THRESHOLDS) this reservation crosses."""
    if campaign.monthly_budget is None and campaign.monthly_budget_per_person is None:
        return []
    locked = Campaign.objects.select_for_update().defer("passcode").get(pk=campaign.pk)
    already = 0
    if batch_pk is not None:
        already = (
            Send.objects.filter(batch_id=batch_pk, batch__budget_month=month)
            .exclude(state__in=_NOT_SPENT)
            .count()
        )
    crossed: list[int] = []
    if locked.monthly_budget is not None:
        used = budget_used(campaign_pk=locked.pk, month=month) - already
        if used + rows > locked.monthly_budget:
            raise ValidationError(
                f"Over the monthly budget of {locked.name}: {used} of {locked.monthly_budget} "
                f"used {_month_words(month)}; this batch needs {rows}. Nothing was sent."
            )
        if locked.monthly_budget:
            before = 100 * used / locked.monthly_budget
            after = 100 * (used + rows) / locked.monthly_budget
            crossed = [t for t in BUDGET_THRESHOLDS if before < t <= after]
    if locked.monthly_budget_per_person is not None and person_pk is not None:
        used = budget_used(campaign_pk=locked.pk, month=month, person_pk=person_pk) - already
        if used + rows > locked.monthly_budget_per_person:
            raise ValidationError(
                f"Over your monthly budget on {locked.name}: {used} of "
                f"{locked.monthly_budget_per_person} used {_month_words(month)}; this batch "
                f"needs {rows}. Nothing was sent."
            )
    return crossed


# --- Approval -------------------------------------------------------------------------------


def batch_may_be_approved_by(*, batch: Batch, user: User | None) -> bool:
    """May this person approve or decline the batch? (No error: for the pages.)"""
    try:
        batch_approver_check(batch=batch, user=user)
    except PermissionDenied:
        return False
    return True


def batch_approver_check(*, batch: Batch, user: User | None) -> None:
    """PermissionDenied unless `user` may decide about the batch: an approver (Managers and
    Admins) with access to its campaign, and never the person who made it."""
    if user is None or not user.is_active or not user.has_perm(APPROVE_PERMISSION):
        raise PermissionDenied(NOT_AN_APPROVER)
    if not campaign_visible_to(user=user, campaign_pk=batch.campaign_id):
        raise PermissionDenied(NOT_AN_APPROVER)
    if batch.created_by_id is not None and batch.created_by_id == user.pk:
        raise PermissionDenied(OWN_BATCH)


def _locked(batch: Batch, *states: str) -> Batch:
    """The batch's row, locked, if it is in one of `states`; ValidationError otherwise (it
    moved since the page was shown: someone else decided, or it was withdrawn)."""
    locked = (
        Batch.objects.select_for_update(of=("self",))
        .select_related("campaign")
        .defer("campaign__passcode")  # never decrypted here: a lost key must not stop a decision
        .filter(pk=batch.pk, state__in=states)
        .first()
    )
    if locked is None:
        batch.refresh_from_db()
        raise ValidationError(f"Batch {batch.pk} is {batch.get_state_display().lower()} now.")
    return locked


def _go(*, batch: Batch, now: datetime) -> str:
    """Send the batch now, or wait for its time: the state it takes, written, and its work
    queued after the commit."""
    from rewards.services.enqueue import batch_start_enqueue
    from rewards.services.sending import batch_start

    if batch.send_at is not None and batch.send_at > now:
        Batch.objects.filter(pk=batch.pk).update(state=Batch.State.SCHEDULED)
        batch_start_enqueue(batch_id=batch.pk, at=batch.send_at)
        return Batch.State.SCHEDULED
    batch_start(batch_id=batch.pk, from_state=batch.state, now=now)
    return Batch.State.SENDING


def batch_approve(*, batch: Batch, actor: User | None) -> Batch:
    """Approve a batch awaiting approval: it reserves its budget now, in the month it goes
    out, and goes out at once or at its time. Approved after its time, it starts at once."""
    from notices.services import notice_enqueue

    batch_approver_check(batch=batch, user=actor)
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(batch, Batch.State.AWAITING_APPROVAL)
        if not locked.campaign.enabled:
            raise ValidationError(
                f"The campaign {locked.campaign.name} is disabled: enable it first, or decline."
            )
        rows = Send.objects.filter(batch=locked, state=Send.State.WAITING).count()
        month = budget_month_of(max(locked.send_at or now, now))
        crossed = budget_reserve(
            campaign=locked.campaign, person_pk=locked.created_by_id, rows=rows, month=month
        )
        Batch.objects.filter(pk=locked.pk).update(
            budget_month=month, decided_by=actor, decided_at=now
        )
        # Only these: a full refresh forgets the campaign, loaded without its passcode.
        locked.refresh_from_db(fields=["budget_month", "decided_by", "decided_at"])
        late = locked.send_at is not None and locked.send_at <= now
        state = _go(batch=locked, now=now)
        audit_record(
            kind=Kind.BATCH_APPROVED,
            actor=actor,
            campaign=locked.campaign,
            batch_pk=locked.pk,
            detail={"rows": rows, "state": state, "late": late},
        )
        notice_enqueue("batch_approved", batch_pk=locked.pk)
        webhook_emit_batch(event=Event.BATCH_APPROVED, batch_id=locked.pk)
        for threshold in crossed:
            notice_enqueue(
                f"budget_{threshold}", batch_pk=locked.pk, campaign_pk=locked.campaign_id
            )
    batch.refresh_from_db()
    logger.info("batch %s approved by %s (%s)", batch.pk, actor, state)
    return batch


def batch_decline(*, batch: Batch, actor: User | None, reason: str) -> Batch:
    """Decline a batch awaiting approval, with a reason the creator reads: none of its rows
    is ever sent."""
    from notices.services import notice_enqueue
    from rewards.services.sending import _move

    batch_approver_check(batch=batch, user=actor)
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why it is declined: the person who made it reads it.")
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(batch, Batch.State.AWAITING_APPROVAL)
        Batch.objects.filter(pk=locked.pk).update(
            state=Batch.State.DECLINED,
            decided_by=actor,
            decided_at=now,
            decline_reason=reason[:2000],
            finished_at=now,
        )
        waiting = Send.objects.filter(batch=locked, state=Send.State.WAITING).values_list(
            "pk", flat=True
        )
        moved = _move(
            ids=list(waiting),
            from_state=Send.State.WAITING,
            to_state=Send.State.CANCELLED,
            note=f"Batch declined by {actor}",
        )
        audit_record(
            kind=Kind.BATCH_DECLINED,
            actor=actor,
            campaign=locked.campaign,
            batch_pk=locked.pk,
            detail={"rows": len(moved), "reason": reason[:500]},
        )
        notice_enqueue("batch_declined", batch_pk=locked.pk)
        webhook_emit_batch(event=Event.BATCH_DECLINED, batch_id=locked.pk)
    batch.refresh_from_db()
    return batch


# --- Schedules ------------------------------------------------------------------------------


# How far ahead a send may be scheduled, by any door (the forms, the API, the command line,
# a reschedule): batch_create and batch_reschedule refuse it..
SCHEDULE_DAYS_AHEAD = 366
TOO_FAR_AHEAD = "At most a year ahead."


def send_at_too_far(*, send_at: datetime, now: datetime) -> bool:
    """A send scheduled further ahead than SCHEDULE_DAYS_AHEAD: refused, as a mistyped year
    would otherwise reserve a budget and hold a batch for decades."""
    return send_at > now + timedelta(days=SCHEDULE_DAYS_AHEAD)


def batch_reschedule(*, batch: Batch, actor: User | None, send_at: datetime | None) -> Batch:
    """Move a batch that has not started to another time (None: now). A scheduled batch
    moved to another month takes its budget there, if it fits."""
    from rewards.services.sending import _steer_check

    _steer_check(batch=batch, actor=actor)
    now = timezone.now()
    if send_at is not None and send_at_too_far(send_at=send_at, now=now):
        raise ValidationError(TOO_FAR_AHEAD)
    if send_at is not None and send_at <= now:
        send_at = None
    with transaction.atomic():
        locked = _locked(batch, Batch.State.SCHEDULED, Batch.State.AWAITING_APPROVAL)
        old = locked.send_at
        changes: dict[str, object] = {"send_at": send_at}
        crossed: list[int] = []
        if locked.state == Batch.State.SCHEDULED:
            if send_at is None and not locked.campaign.enabled:
                raise ValidationError(
                    f"The campaign {locked.campaign.name} is disabled: enable it first, or "
                    "withdraw the batch."
                )
            month = budget_month_of(send_at or now)
            if month != locked.budget_month:
                rows = Send.objects.filter(batch=locked, state=Send.State.WAITING).count()
                crossed = budget_reserve(
                    campaign=locked.campaign,
                    person_pk=locked.created_by_id,
                    rows=rows,
                    month=month,
                    batch_pk=locked.pk,
                )
                changes["budget_month"] = month
        Batch.objects.filter(pk=locked.pk).update(**changes)
        # Only these: a full refresh forgets the campaign, loaded without its passcode.
        locked.refresh_from_db(fields=list(changes))
        if locked.state == Batch.State.SCHEDULED:
            _go(batch=locked, now=now)
        audit_record(
            kind=Kind.BATCH_RESCHEDULED,
            actor=actor,
            campaign=locked.campaign,
            batch_pk=locked.pk,
            detail={
                "from": old.isoformat() if old else None,
                "to": send_at.isoformat() if send_at else None,
            },
        )
        if crossed:
            from notices.services import notice_enqueue

            for threshold in crossed:
                notice_enqueue(
                    f"budget_{threshold}", batch_pk=locked.pk, campaign_pk=locked.campaign_id
                )
    batch.refresh_from_db()
    return batch


def batches_start_due(*, now: datetime | None = None, batch_id: int | None = None) -> int:
    """Start the scheduled batches whose time has come (or just `batch_id`, if its time has
    come: a rescheduled batch's earlier task finds it not due and does nothing). Returns how
    many started."""
    from rewards.services.sending import batch_start

    now = now or timezone.now()
    # A campaign disabled since it was scheduled: it waits until the campaign is enabled again.
    due = Batch.objects.filter(
        state=Batch.State.SCHEDULED, send_at__lte=now, campaign__enabled=True
    )
    if batch_id is not None:
        due = due.filter(pk=batch_id)
    started = 0
    for pk in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            if batch_start(batch_id=pk, from_state=Batch.State.SCHEDULED, now=now):
                started += 1
                batch = Batch.objects.select_related("campaign").get(pk=pk)
                audit_record(
                    kind=Kind.BATCH_STARTED,
                    actor=None,
                    campaign=batch.campaign,
                    batch_pk=pk,
                    detail={"send_at": batch.send_at.isoformat() if batch.send_at else None},
                )
    return started
