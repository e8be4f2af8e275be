"""Reconciliation: what became of the rows whose create call's outcome is unknown.

A dropped connection, a timeout, a 5xx or error 110 on a create call leaves its rows *unknown*:
the rewards may or may not exist. We never create again blindly. We read the campaign's rewards
for the month(s) of the attempts and match them to the rows:

- same recipient (addresses without case; our recipient IDs exactly),
- made no earlier than the row's first attempt, minus MOKUGIFT_CLOCK_SKEW (Mokugift's dates
  have second precision and its clock is not ours),
- not already the reward of another row (`Send.remote_id` is unique, so two passes racing
  cannot both take it either).

Found: the row is *sent* with that reward ID (a link-mode row is "sent, link not recovered":
the query calls return no URL).

Absent is harder, because absence in a list proves nothing while Mokugift may still be working
on the request: a create it takes 70 s to commit is missing from every query of the first 70 s.
So a row is proven absent only by a query that began MOKUGIFT_COMMIT_HORIZON seconds (a bound
on Mokugift's commit time) or more after its attempt started. Until then it stays *unknown*
and is looked for again on every pass. Proven absent, it goes back to *waiting* (or fails, out
of attempts), and `absent_at` says when.

The horizon is a promise we cannot check, so we keep looking: for MOKUGIFT_LATE_WATCH after a
row was proven absent, every pass also looks for an unclaimed reward to its recipient. Found
for a row still waiting, failed or cancelled, the row is *sent* with it (and not sent again).
Found for a row that was sent again, it is **paid twice**: the row keeps both reward IDs and
`paid_twice_at`, and the pages and the report show it. The same for a later row to the same
recipient that someone sent after we said the first had failed: both rows are paid twice.

What remains ambiguous, and how we lean: a reward to the same recipient made in the window by
someone else (another system on the same campaign, or the Mokugift dashboard) is
indistinguishable from ours; we take it as ours, which errs toward never paying twice (and,
for a row sent again, toward raising the alarm). While another row to the same recipient in
the same campaign is in flight, its reward may be in the list before that row records it, so
such recipients wait for the next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import Kind
from audit.services import audit_record
from campaigns.crypto import DecryptionError
from campaigns.models import Campaign
from notices.services import notice_enqueue
from rewards.models import Batch, Send, SendEvent
from rewards.models.ledger import Mode
from rewards.mokugift import MokugiftClient, MokugiftError, RewardRecord, TransportError
from rewards.recipients import recipient_key
from rewards.services.backoff import campaign_backoff_record
from rewards.services.sending import batch_finish_if_done, batch_wake, retry_delay
from webhooks.services import webhook_emit_paid_twice

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

LINK_MODES = (Mode.LINK, Mode.LINK_ID)


@dataclass
class ReconcileReport:
    found: int = 0
    absent: int = 0
    failed: int = 0
    # Rows still unknown (inside the commit horizon, or a recipient in flight): look again.
    pending: int = 0
    # Rewards that came after their row was proven absent: the row took it (not sent again)...
    late: int = 0
    # ...or the row had been sent again: paid twice (rows flagged in this pass).
    paid_twice: int = 0
    error: str = ""
    batches: set[int] = field(default_factory=set)
    # The earliest moment an unknown row left pending may be proven absent.
    next_decisive_at: datetime | None = None


def _key(*, by_id: bool, recipient: str) -> tuple[bool, str]:
    # An ID and an address that happen to read the same are two recipients.
    return by_id, recipient_key(recipient=recipient, by_id=by_id)


def _row_key(row: Send) -> tuple[bool, str]:
    return _key(by_id=row.batch.mode == Mode.LINK_ID, recipient=row.recipient)


def months_between(start: datetime, end: datetime) -> list[tuple[int, int]]:
    """(year, month) of every month from start to end, both included, in UTC."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    year, month = start.year, start.month
    months = []
    while (year, month) <= (end.year, end.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def absent_provable_at(row: Send) -> datetime:
    """The first moment a query may prove that the row's current attempt made nothing."""
    started = row.attempt_started_at or row.first_attempt_at or row.updated_at
    return started + timedelta(seconds=settings.MOKUGIFT_COMMIT_HORIZON)


_ROW_FIELDS = (
    "pk",
    "row_number",
    "recipient",
    "state",
    "attempts",
    "first_attempt_at",
    "attempt_started_at",
    "absent_at",
    "remote_id",
    "updated_at",
    "batch__mode",
    "batch__state",
    "batch__id",
    "batch__campaign_id",
)


def _watched(*, campaign_pk: int, now: datetime) -> QuerySet[Send]:
    """Rows proven absent within MOKUGIFT_LATE_WATCH whose reward may still come late."""
    return (
        Send.objects.filter(
            batch__campaign_id=campaign_pk,
            absent_at__gte=now - timedelta(seconds=settings.MOKUGIFT_LATE_WATCH),
            paid_twice_at__isnull=True,
        )
        .exclude(state__in=[Send.State.SENDING, Send.State.UNKNOWN])
        .select_related("batch")
        .only(*_ROW_FIELDS)
        .order_by("first_attempt_at", "pk")
    )


def _late_watch_due(*, campaign_pk: int) -> bool:
    """At most one pass per MOKUGIFT_LATE_WATCH_INTERVAL for a campaign with only watched rows
    (a pass with unknown rows queries anyway, and looks for late rewards for free)."""
    interval = settings.MOKUGIFT_LATE_WATCH_INTERVAL
    if interval <= 0:
        return True
    return cache.add(f"rewards:late-watch:{campaign_pk}", 1, timeout=interval)


def campaigns_to_reconcile(*, now: datetime | None = None) -> list[int]:
    """Campaigns with unknown rows, or with rows whose reward may still come late."""
    now = now or timezone.now()
    unknown = Send.objects.filter(state=Send.State.UNKNOWN).values_list(
        "batch__campaign_id", flat=True
    )
    watched = Send.objects.filter(
        absent_at__gte=now - timedelta(seconds=settings.MOKUGIFT_LATE_WATCH),
        paid_twice_at__isnull=True,
    ).values_list("batch__campaign_id", flat=True)
    return sorted(set(unknown.distinct()) | set(watched.distinct()))


def campaign_reconcile(*, campaign_pk: int) -> ReconcileReport:
    """Settle the campaign's unknown rows against its rewards at Mokugift, and look for the
    late rewards of rows proven absent (see the module)."""
    report = ReconcileReport()
    campaign = Campaign.objects.filter(pk=campaign_pk).defer("passcode").first()
    if campaign is None:
        return report
    started = timezone.now()
    rows = list(
        Send.objects.filter(state=Send.State.UNKNOWN, batch__campaign_id=campaign_pk)
        .select_related("batch")
        .only(*_ROW_FIELDS)
        .order_by("first_attempt_at", "pk")
    )
    watched = list(_watched(campaign_pk=campaign_pk, now=started))
    if watched and not rows and not _late_watch_due(campaign_pk=campaign_pk):
        watched = []
    if not rows and not watched:
        return report
    skew = timedelta(seconds=settings.MOKUGIFT_CLOCK_SKEW)
    in_flight = {
        _key(by_id=mode == Mode.LINK_ID, recipient=recipient)
        for recipient, mode in Send.objects.filter(
            state=Send.State.SENDING, batch__campaign_id=campaign_pk
        ).values_list("recipient", "batch__mode")
    }
    wanted: dict[tuple[bool, str], list[Send]] = defaultdict(list)
    watching: dict[tuple[bool, str], list[Send]] = defaultdict(list)
    for row in rows:
        key = _row_key(row)
        if key in in_flight:
            report.pending += 1
            _note_decisive(report, row)
            continue
        wanted[key].append(row)
    for row in watched:
        key = _row_key(row)
        if key not in in_flight:
            watching[key].append(row)
    if not wanted and not watching:
        return report

    def window_start(row: Send) -> datetime:
        return (row.first_attempt_at or row.attempt_started_at or row.updated_at) - skew

    query_started = timezone.now()
    everyone = [row for group in (*wanted.values(), *watching.values()) for row in group]
    earliest = min(window_start(row) for row in everyone)
    candidates: dict[tuple[bool, str], list[RewardRecord]] = defaultdict(list)
    try:
        client = MokugiftClient.for_campaign(campaign)
        for year, month in months_between(earliest, query_started):
            with client.rewards_in_month(month=month, year=year) as stream:
                for reward in stream:
                    if reward.recipient_id:
                        key = _key(by_id=True, recipient=reward.recipient_id)
                    else:
                        key = _key(by_id=False, recipient=reward.recipient_email or "")
                    if (key in wanted or key in watching) and reward.date >= earliest:
                        candidates[key].append(reward)
    except (MokugiftError, DecryptionError) as error:
        # Nothing decided: the rows stay unknown until the next pass.
        report.error = str(error)
        for group in wanted.values():
            report.pending += len(group)
            for row in group:
                _note_decisive(report, row)
        logger.warning("reconcile campaign %s: the query failed: %s", campaign_pk, error)
        if isinstance(error, TransportError):
            # The campaign's endpoint misbehaves: its passes and its sending wait a while.
            campaign_backoff_record(
                campaign_pk=campaign_pk, reason=str(error), call_started_at=query_started
            )
        return report

    claimed = _claimed(str(r.id) for group in candidates.values() for r in group)
    now = timezone.now()
    for key, group in wanted.items():
        # Earliest first on both sides: with two unknown rows to one recipient, the older row
        # takes the older reward.
        offered = sorted(candidates.get(key, []), key=lambda r: (r.date, str(r.id)))
        for row in group:
            reward = next(
                (r for r in offered if str(r.id) not in claimed and r.date >= window_start(row)),
                None,
            )
            if reward is not None:
                if _found(row, reward=reward, now=now):
                    claimed.add(str(reward.id))
                    report.found += 1
                    report.batches.add(row.batch_id)
                else:
                    report.pending += 1
            elif query_started >= absent_provable_at(row):
                moved = _absent(row, now=now)
                if moved == Send.State.FAILED:
                    report.failed += 1
                elif moved == Send.State.WAITING:
                    report.absent += 1
                report.batches.add(row.batch_id)
            else:
                # Inside the commit horizon: Mokugift may still be making it.
                report.pending += 1
                _note_decisive(report, row)
    for key, group in watching.items():
        offered = sorted(candidates.get(key, []), key=lambda r: (r.date, str(r.id)))
        for row in group:
            reward = next(
                (r for r in offered if str(r.id) not in claimed and r.date >= window_start(row)),
                None,
            )
            if reward is None:
                continue
            claimed.add(str(reward.id))
            if row.state == Send.State.SENT:
                report.paid_twice += _paid_twice(row, reward=reward, now=now)
            else:
                taken, paid_twice = _late(row, reward=reward, now=now)
                report.late += taken
                report.paid_twice += paid_twice
            report.batches.add(row.batch_id)
    logger.info(
        "reconcile campaign %s: %d found, %d absent, %d failed, %d pending, %d late, %d paid twice",
        campaign_pk,
        report.found,
        report.absent,
        report.failed,
        report.pending,
        report.late,
        report.paid_twice,
    )
    if report.paid_twice:
        logger.error(
            "reconcile campaign %s: %d rows PAID TWICE: a reward came after its row was "
            "proven absent (see the Paid twice page)",
            campaign_pk,
            report.paid_twice,
        )
    for batch_id in sorted(report.batches):
        _batch_continue(batch_id=batch_id)
    return report


def _note_decisive(report: ReconcileReport, row: Send) -> None:
    at = absent_provable_at(row)
    if report.next_decisive_at is None or at < report.next_decisive_at:
        report.next_decisive_at = at


def _claimed(remote_ids: Iterable[str]) -> set[str]:
    """Of these reward IDs, the ones a row already holds (as its reward or as its second)."""
    ids = list(remote_ids)
    if not ids:
        return set()
    held = set(
        Send.objects.filter(remote_id__in=ids)
        .exclude(remote_id="")  # lets PostgreSQL use the partial unique index
        .order_by()
        .values_list("remote_id", flat=True)
    )
    held |= set(
        Send.objects.filter(duplicate_remote_id__in=ids)
        .exclude(duplicate_remote_id="")
        .order_by()
        .values_list("duplicate_remote_id", flat=True)
    )
    return held


def _found(row: Send, *, reward: RewardRecord, now: datetime) -> bool:
    link = row.batch.mode in LINK_MODES
    try:
        with transaction.atomic():
            moved = Send.objects.filter(pk=row.pk, state=Send.State.UNKNOWN).update(
                state=Send.State.SENT,
                remote_id=str(reward.id),
                url="",
                link_not_recovered=link,
                error_code=None,
                error_message="",
                next_attempt_at=None,
                sent_at=reward.date,
                updated_at=now,
            )
            if moved:
                SendEvent.objects.create(
                    send_id=row.pk,
                    from_state=Send.State.UNKNOWN,
                    to_state=Send.State.SENT,
                    note=f"found at Mokugift: reward {reward.id} of {reward.date:%Y-%m-%d %H:%M:%S}"
                    + (" (link not recovered)" if link else ""),
                )
    except IntegrityError:
        # Another pass gave this reward to another row in the meantime.
        return False
    return bool(moved)


def _absent(row: Send, *, now: datetime) -> str | None:
    fields: dict[str, object]
    if row.batch.state == Batch.State.CANCELLED:
        # Nothing was made, and nobody wants it any more.
        to_state = Send.State.CANCELLED
        fields = {"error_message": "", "next_attempt_at": None}
    elif row.attempts >= settings.MOKUGIFT_MAX_ATTEMPTS:
        words = (
            f"Gave up after {row.attempts} attempts: the outcome of the last was unknown and "
            "Mokugift has no reward for this recipient from it."
        )
        to_state, fields = Send.State.FAILED, {"error_message": words}
    else:
        delay = retry_delay(attempts=row.attempts)
        to_state = Send.State.WAITING
        fields = {
            "next_attempt_at": now + timedelta(seconds=delay),
            "error_message": "The last attempt's outcome was unknown; Mokugift has no reward "
            "from it, so it will be tried again.",
        }
    horizon = settings.MOKUGIFT_COMMIT_HORIZON
    with transaction.atomic():
        moved = Send.objects.filter(pk=row.pk, state=Send.State.UNKNOWN).update(
            state=to_state, updated_at=now, absent_at=now, **fields
        )
        if moved:
            SendEvent.objects.create(
                send_id=row.pk,
                from_state=Send.State.UNKNOWN,
                to_state=to_state,
                note=f"not found at Mokugift {horizon:g} s or more after the attempt began",
            )
    return to_state if moved else None


_AFTER_ABSENT: dict[str, str] = {
    Send.State.WAITING: "it will not be sent again",
    Send.State.FAILED: "the row had been given up",
    Send.State.CANCELLED: "the row had been cancelled",
}


def _late(row: Send, *, reward: RewardRecord, now: datetime) -> tuple[int, int]:
    """A reward for a row proven absent that was not sent again: the row is sent with it.
    If someone sent the recipient another reward since (a later row, after this one was given
    up), both rows are paid twice. Returns (1 if the row took it, else 0; rows paid twice)."""
    link = row.batch.mode in LINK_MODES
    why = _AFTER_ABSENT.get(row.state, "")
    note = (
        f"found at Mokugift after it was taken as never made: reward {reward.id} of "
        f"{reward.date:%Y-%m-%d %H:%M:%S} UTC; {why}"
    )
    try:
        with transaction.atomic():
            moved = Send.objects.filter(pk=row.pk, state=row.state, paid_twice_at=None).update(
                state=Send.State.SENT,
                remote_id=str(reward.id),
                url="",
                link_not_recovered=link,
                error_code=None,
                error_message="A reward was made after Mokugift had listed none for this "
                "attempt: it is this row's.",
                next_attempt_at=None,
                sent_at=reward.date,
                updated_at=now,
            )
            if moved:
                SendEvent.objects.create(
                    send_id=row.pk, from_state=row.state, to_state=Send.State.SENT, note=note
                )
    except IntegrityError:
        return 0, 0
    if not moved:
        return 0, 0
    # Someone sent this recipient again after we said this row failed: a later row of the
    # campaign to the same recipient, first tried after this row was proven absent.
    key = _row_key(row)
    others = [
        other
        for other in Send.objects.filter(
            batch__campaign_id=row.batch.campaign_id,
            state=Send.State.SENT,
            paid_twice_at=None,
            first_attempt_at__gte=row.absent_at,
        )
        .exclude(pk=row.pk)
        .exclude(remote_id="")
        .select_related("batch")
        .only(*_ROW_FIELDS)
        .order_by("first_attempt_at", "pk")
        if _row_key(other) == key
    ]
    if not others:
        return 1, 0
    return 1, _flag_pair(row, row_remote_id=str(reward.id), other=others[0], now=now)


def _flag_pair(row: Send, *, row_remote_id: str, other: Send, now: datetime) -> int:
    """Two rows, one intended send: each is paid twice, naming the other's reward."""
    flagged = 0
    pairs = ((row, other.remote_id, other), (other, row_remote_id, row))
    try:
        with transaction.atomic():
            for send, duplicate, partner in pairs:
                moved = Send.objects.filter(pk=send.pk, paid_twice_at=None).update(
                    duplicate_remote_id=duplicate, paid_twice_at=now, updated_at=now
                )
                if moved:
                    flagged += 1
                    SendEvent.objects.create(
                        send_id=send.pk,
                        from_state=Send.State.SENT,
                        to_state=Send.State.SENT,
                        note=f"PAID TWICE with row {partner.row_number} of batch "
                        f"{partner.batch_id}: the recipient also got reward {duplicate}",
                    )
                    # One notice per batch: the two rows may be of one batch.
                    if send.batch_id != partner.batch_id or send is row:
                        notice_enqueue("paid_twice", batch_pk=send.batch_id)
                    webhook_emit_paid_twice(send=send)
    except IntegrityError:
        return 0
    return flagged


def _paid_twice(row: Send, *, reward: RewardRecord, now: datetime) -> int:
    """A late reward for a row that was sent again: the recipient has two rewards for one
    intended send. Flag it, unless the reward turns out to be another row's after all."""
    key = _row_key(row)
    remote_id = str(reward.id)
    try:
        with transaction.atomic():
            # Checked again inside the transaction: a row to the same recipient that was in
            # flight when the pass began may have recorded this very reward since.
            busy = Send.objects.filter(
                batch__campaign_id=row.batch.campaign_id,
                state__in=[Send.State.SENDING, Send.State.UNKNOWN],
            ).values_list("recipient", "batch__mode")
            if any(_key(by_id=m == Mode.LINK_ID, recipient=r) == key for r, m in busy):
                return 0
            if _claimed([remote_id]):
                return 0
            moved = Send.objects.filter(
                pk=row.pk, state=Send.State.SENT, paid_twice_at=None
            ).update(duplicate_remote_id=remote_id, paid_twice_at=now, updated_at=now)
            if moved:
                SendEvent.objects.create(
                    send_id=row.pk,
                    from_state=Send.State.SENT,
                    to_state=Send.State.SENT,
                    note=f"PAID TWICE: reward {remote_id} of "
                    f"{reward.date:%Y-%m-%d %H:%M:%S} UTC came after this row was proven "
                    f"absent and sent again as {row.remote_id}",
                )
                notice_enqueue("paid_twice", batch_pk=row.batch_id)
                webhook_emit_paid_twice(send=row)
    except IntegrityError:
        return 0
    return moved


def _batch_continue(*, batch_id: int) -> None:
    """Rows left *unknown*: wake the batch (when its next retry is due) or finish it."""
    state = Batch.objects.filter(pk=batch_id).values_list("state", flat=True).first()
    if state == Batch.State.SENDING:
        batch_wake(batch_id=batch_id)
    elif state is not None:
        batch_finish_if_done(batch_id=batch_id)


# --- What an operator decides about unknown rows --------------------------------------------


def sends_unknown_check_now(*, batch: Batch, actor: User | None = None) -> int:
    """Ask Mokugift about the batch's unknown rows now, not at the next sweep. Returns how
    many rows are unknown. The check decides only what a check may decide: inside the commit
    horizon a row not listed stays unknown."""
    from rewards.services.enqueue import reconcile_enqueue

    unknown = Send.objects.filter(batch=batch, state=Send.State.UNKNOWN).count()
    if unknown:
        reconcile_enqueue(campaign_pk=batch.campaign_id)
        logger.info("batch %s: %s asked to check %d unknown rows now", batch.pk, actor, unknown)
    return unknown


def _unknown_rows(*, batch: Batch, row_numbers: Iterable[int] | None) -> list[int]:
    rows = Send.objects.filter(batch=batch, state=Send.State.UNKNOWN)
    if row_numbers is not None:
        rows = rows.filter(row_number__in=list(row_numbers))
    return list(rows.values_list("pk", flat=True))


def _operator_decide(
    *,
    batch: Batch,
    actor: User | None,
    reason: str,
    row_numbers: Iterable[int] | None,
    to_state: str,
    decision: str,
    reason_missing: str,
    now: datetime,
    **fields: object,
) -> int:
    """Move the batch's unknown rows (those among `row_numbers`, or all) as a person decided,
    each with a history entry naming them and their reason. Returns the rows moved."""
    reason = reason.strip()
    if not reason:
        raise ValidationError(reason_missing)
    ids = _unknown_rows(batch=batch, row_numbers=row_numbers)
    with transaction.atomic():
        moved = list(
            Send.objects.select_for_update()
            .filter(pk__in=ids, state=Send.State.UNKNOWN)
            .values_list("pk", flat=True)
        )
        Send.objects.filter(pk__in=moved, state=Send.State.UNKNOWN).update(
            state=to_state, updated_at=now, next_attempt_at=None, **fields
        )
        SendEvent.objects.bulk_create(
            SendEvent(
                send_id=pk,
                from_state=Send.State.UNKNOWN,
                to_state=to_state,
                note=f"{decision} by {actor}: {reason}",
                actor=actor if actor is not None and actor.pk else None,
            )
            for pk in moved
        )
        if moved:
            row_list = sorted(
                Send.objects.filter(pk__in=moved).values_list("row_number", flat=True)
            )
            audit_record(
                kind=Kind.SEND_DECIDED,
                actor=actor,
                campaign=batch.campaign,
                batch_pk=batch.pk,
                detail={
                    "decision": decision,
                    "rows": row_list[:100],
                    "count": len(moved),
                    "reason": reason[:500],
                },
            )
    logger.info("batch %s: %s: %s, %d unknown rows", batch.pk, actor, decision, len(moved))
    batch_finish_if_done(batch_id=batch.pk, now=now)
    return len(moved)


def sends_unknown_mark_failed(
    *, batch: Batch, actor: User | None, reason: str, row_numbers: Iterable[int] | None = None
) -> int:
    """An operator decides that unknown rows are not to be sent (e.g. checked with Mokugift's
    support that nothing was made, and no retry is wanted). Returns the rows moved.

    They are still watched: should Mokugift list their reward later, it is recorded as sent.
    """
    now = timezone.now()
    return _operator_decide(
        batch=batch,
        actor=actor,
        reason=reason,
        row_numbers=row_numbers,
        to_state=Send.State.FAILED,
        decision="marked failed (not to be sent)",
        reason_missing="Say why the rows are marked failed: it goes in their history.",
        now=now,
        absent_at=now,
        error_message=f"Marked failed by {actor}, not sent again: {reason.strip()}",
    )


def sends_unknown_mark_sent(
    *, batch: Batch, actor: User | None, reason: str, row_numbers: Iterable[int] | None = None
) -> int:
    """An operator checked elsewhere (the Mokugift dashboard, the recipient) that unknown rows'
    rewards were made: they are *sent*, without a reward ID. Returns the rows moved."""
    now = timezone.now()
    return _operator_decide(
        batch=batch,
        actor=actor,
        reason=reason,
        row_numbers=row_numbers,
        to_state=Send.State.SENT,
        decision="marked sent after checking elsewhere",
        reason_missing="Say how you know the rewards were made: it goes in their history.",
        now=now,
        sent_at=now,
        error_code=None,
        error_message=f"Marked sent by {actor}: {reason.strip()}",
        # The query calls give no URL, and neither did the operator.
        link_not_recovered=batch.mode != Mode.EMAIL,
    )
