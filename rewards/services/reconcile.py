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
the query calls return no URL). Provably absent: the row goes back to *waiting* (or fails, out
of attempts). "Provably" means the row has been unknown for MOKUGIFT_RECONCILE_SETTLE seconds
before the query began, so that a create the server was still finishing when the answer was
lost is in the list.

What remains ambiguous, and how we lean: a reward to the same recipient made in the window by
someone else (another system on the same campaign, or the Mokugift dashboard) is
indistinguishable from ours; we take it as ours, which errs toward never paying twice. While
another row to the same recipient in the same campaign is in flight, its reward may be in the
list before that row records it, so such recipients wait for the next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.crypto import DecryptionError
from campaigns.models import Campaign
from rewards.models import Batch, Send, SendEvent
from rewards.models.ledger import Mode
from rewards.mokugift import MokugiftClient, MokugiftError, TransportError
from rewards.services.backoff import campaign_backoff_record
from rewards.services.sending import batch_finish_if_done, batch_wake, retry_delay

logger = logging.getLogger(__name__)

LINK_MODES = (Mode.LINK, Mode.LINK_ID)


@dataclass
class ReconcileReport:
    found: int = 0
    absent: int = 0
    failed: int = 0
    # Rows still unknown (too fresh to call absent, or a recipient in flight): try again later.
    pending: int = 0
    error: str = ""
    batches: set[int] = field(default_factory=set)


def _key(*, by_id: bool, recipient: str) -> tuple[str, str]:
    return ("id", recipient) if by_id else ("email", recipient.strip().lower())


def months_between(start: datetime, end: datetime) -> list[tuple[int, int]]:
    """(month, year) of every month from start to end, both included, in UTC."""
    start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    month, year = start.month, start.year
    months = []
    while (year, month) <= (end.year, end.month):
        months.append((month, year))
        month, year = (1, year + 1) if month == 12 else (month + 1, year)
    return months


def campaign_reconcile(*, campaign_id: int) -> ReconcileReport:
    """Settle the campaign's unknown rows against its rewards at Mokugift (see the module)."""
    report = ReconcileReport()
    campaign = Campaign.objects.filter(pk=campaign_id).defer("passcode").first()
    rows = list(
        Send.objects.filter(state=Send.State.UNKNOWN, batch__campaign_id=campaign_id)
        .select_related("batch")
        .only(
            "pk",
            "recipient",
            "attempts",
            "first_attempt_at",
            "attempt_started_at",
            "updated_at",
            "batch__mode",
            "batch__state",
            "batch__id",
        )
        .order_by("first_attempt_at", "pk")
    )
    if campaign is None or not rows:
        return report
    skew = timedelta(seconds=settings.MOKUGIFT_CLOCK_SKEW)
    in_flight = {
        _key(by_id=mode == Mode.LINK_ID, recipient=recipient)
        for recipient, mode in Send.objects.filter(
            state=Send.State.SENDING, batch__campaign_id=campaign_id
        ).values_list("recipient", "batch__mode")
    }
    wanted: dict[tuple[str, str], list[Send]] = defaultdict(list)
    for row in rows:
        key = _key(by_id=row.batch.mode == Mode.LINK_ID, recipient=row.recipient)
        if key in in_flight:
            report.pending += 1
            continue
        wanted[key].append(row)
    if not wanted:
        return report

    def window_start(row: Send) -> datetime:
        return (row.first_attempt_at or row.attempt_started_at or row.updated_at) - skew

    query_started = timezone.now()
    earliest = min(window_start(row) for group in wanted.values() for row in group)
    candidates: dict[tuple[str, str], list] = defaultdict(list)
    try:
        client = MokugiftClient.for_campaign(campaign)
        for month, year in months_between(earliest, query_started):
            with client.rewards_in_month(month=month, year=year) as stream:
                for reward in stream:
                    if reward.recipient_id:
                        key = _key(by_id=True, recipient=reward.recipient_id)
                    else:
                        key = _key(by_id=False, recipient=reward.recipient_email or "")
                    if key in wanted and reward.date >= earliest:
                        candidates[key].append(reward)
    except (MokugiftError, DecryptionError) as error:
        # Nothing decided: the rows stay unknown until the next pass.
        report.error = str(error)
        report.pending += sum(len(group) for group in wanted.values())
        logger.warning("reconcile campaign %s: the query failed: %s", campaign_id, error)
        if isinstance(error, TransportError):
            # The campaign's endpoint misbehaves: its passes and its sending wait a while.
            campaign_backoff_record(
                campaign_id=campaign_id, reason=str(error), call_started_at=query_started
            )
        return report

    remote_ids = [str(r.id) for group in candidates.values() for r in group]
    claimed = set(
        Send.objects.filter(remote_id__in=remote_ids)
        .exclude(remote_id="")  # lets PostgreSQL use the partial unique index
        .order_by()
        .values_list("remote_id", flat=True)
    )
    settled_before = query_started - timedelta(seconds=settings.MOKUGIFT_RECONCILE_SETTLE)
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
            elif row.updated_at <= settled_before:
                moved = _absent(row, now=now)
                if moved == Send.State.FAILED:
                    report.failed += 1
                elif moved == Send.State.WAITING:
                    report.absent += 1
                report.batches.add(row.batch_id)
            else:
                report.pending += 1
    logger.info(
        "reconcile campaign %s: %d found, %d absent, %d failed, %d pending",
        campaign_id,
        report.found,
        report.absent,
        report.failed,
        report.pending,
    )
    for batch_id in sorted(report.batches):
        _batch_continue(batch_id=batch_id)
    return report


def _found(row: Send, *, reward, now: datetime) -> bool:
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
    with transaction.atomic():
        moved = Send.objects.filter(pk=row.pk, state=Send.State.UNKNOWN).update(
            state=to_state, updated_at=now, **fields
        )
        if moved:
            SendEvent.objects.create(
                send_id=row.pk,
                from_state=Send.State.UNKNOWN,
                to_state=to_state,
                note="not found at Mokugift",
            )
    return to_state if moved else None


def _batch_continue(*, batch_id: int) -> None:
    """Rows left *unknown*: wake the batch (when its next retry is due) or finish it."""
    state = Batch.objects.filter(pk=batch_id).values_list("state", flat=True).first()
    if state == Batch.State.SENDING:
        batch_wake(batch_id=batch_id)
    elif state is not None:
        batch_finish_if_done(batch_id=batch_id)
