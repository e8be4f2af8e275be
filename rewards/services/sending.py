"""Sending rewards: a batch's life cycle, from its creation to its end.

The ledger row (`Send`) is written before anything is enqueued, and only a conditional UPDATE
moves it (`filter(pk=..., state=...).update(...)`), so two workers, a redelivered task or a
double click can never both send it. The states and their moves are in the docstring of
rewards/models/ledger.py `Send`.

Here: the batch and its rows written in one transaction (`batch_create`), then cancel, resume,
retry the failed, pause, wake, and the end (`batch_finish_if_done`). The work itself is done
by chains of `batch_send_chunk` tasks, each claiming one chunk, making one call and recording
it, then the next chunk in the same process for about a second before a successor task takes
over (rewards/services/chunk.py; queued by rewards/services/enqueue.py). A batch runs
MOKUGIFT_SEND_PARALLELISM chains at once, so several workers share it. Nothing depends on the
broker delivering a task exactly once: the periodic sweep (rewards/services/sweep.py) finds
what a dead worker left behind.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Min, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.models import Kind
from audit.services import audit_record
from campaigns.selectors import campaign_visible_to, user_is_admin
from notices.services import notice_enqueue
from rewards.models import Batch, Send, SendEvent
from rewards.models.ledger import OPEN_STATES, LeftOutRow, Mode
from rewards.services import ledger_postgresql
from rewards.services.controls import (
    TOO_FAR_AHEAD,
    budget_month_of,
    budget_reserve,
    send_at_too_far,
)
from rewards.services.enqueue import batch_enqueue, batch_start_enqueue
from rewards.services.ledger_months import ledger_months_refresh_after
from webhooks.models import Event
from webhooks.services import webhook_emit_batch

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from campaigns.models import Campaign

logger = logging.getLogger(__name__)

# The Mokugift errors in plain words, for the results table and CSV; api_error_words adds the
# code once. Mokugift's own description would say the same thing again, so it is not added.
PLAIN_WORDS = {
    100: "Wrong HTTP method, a bug on our side",
    101: "Unknown campaign ID",
    102: "Wrong passcode: check it on the campaign page",
    103: "Campaign disabled",
    104: "Campaign expired, by date or budget",
    105: "No moku-coins left",
    110: "Internal error at Mokugift",
    111: "Recipient's email address or ID missing",
    112: "Email address not valid",
    113: "Parameters refused, e.g. a name Mokugift cannot carry",
    114: "Too many rewards in one call, a bug on our side",
}
PAUSED_FOR_KEYS = (
    "Paused: the campaign's passcode cannot be decrypted with any key in "
    "FIELD_ENCRYPTION_KEYS. An admin must put the missing key back (or set the passcode "
    "again), then resume the batch; nothing was sent and no row was claimed."
)
PAUSED_FOR_COINS = (
    "Paused: no moku-coins left on the Mokugift account (Mokugift error 105). "
    "Top the account up, then resume the batch; rows not yet sent are kept waiting."
)


NOT_YOUR_CAMPAIGN = "You may not send on this campaign: it is not one of yours."


ONLY_ITS_CREATOR = (
    "Only the person who made this batch, or an admin, may cancel, resume or retry it. "
    "Ask them, or an admin."
)


def batch_steerable_by(*, batch: Batch, user: User | None) -> bool:
    """May this person cancel, resume or retry the batch? Its creator and admins may; the
    command line (no person) may. Others who share the campaign see the batch, and no more."""
    if user is None:
        return True
    return user.pk == batch.created_by_id or user_is_admin(user=user)


def _steer_check(*, batch: Batch, actor: User | None) -> None:
    if not batch_steerable_by(batch=batch, user=actor):
        raise PermissionDenied(ONLY_ITS_CREATOR)


@dataclass(frozen=True)
class RecipientRow:
    """One intended reward as the upload (or the form) gave it."""

    row_number: int
    recipient: str
    name: str = ""


def api_error_words(*, code: int | None, description: str = "") -> str:
    """A Mokugift error said once, in words a marketer can act on, with its code for support:
    "Campaign disabled (Mokugift error 103)". Mokugift's own description stands in only for a
    code outside the API document's table.

    Every error text of a row is composed here (or quotes this): the pages and the results
    CSV show `Send.error_message` as it is, adding nothing.
    """
    plain = PLAIN_WORDS.get(code or 0) or description.strip() or "Refused by Mokugift"
    return f"{plain} (Mokugift error {code})" if code else plain


def outcome_unknown_words(*, said: str) -> str:
    """A row whose create call may or may not have made its reward, and why: "Outcome
    unknown: <why>; checking with Mokugift." The client's own message ends in "(outcome
    unknown)", which this already says."""
    return f"Outcome unknown: {said.removesuffix(' (outcome unknown)')}; checking with Mokugift."


def retry_delay(*, attempts: int) -> float:
    """Seconds before the next try: doubling from the base, capped, with +-50 % jitter so that
    rows and workers that failed together do not all come back at the same instant."""
    base = settings.MOKUGIFT_RETRY_BACKOFF * (2.0 ** max(0, attempts - 1))
    return min(settings.MOKUGIFT_RETRY_BACKOFF_MAX, base) * random.uniform(0.5, 1.5)


def _chains_for(rows: int) -> int:
    return min(settings.MOKUGIFT_SEND_PARALLELISM, math.ceil(rows / settings.MOKUGIFT_CHUNK_SIZE))


# --- The batch, from the web page or the command line ---------------------------------------


def batch_create(
    *,
    campaign: Campaign,
    mode: str,
    rows: Sequence[RecipientRow],
    created_by: User | None = None,
    source: str,
    idempotency_key: str | None = None,
    left_out: Iterable[LeftOutRow] = (),
    sent_anyway: Iterable[LeftOutRow] = (),
    send_anyway_by: User | None = None,
    filename: str = "",
    send_at: datetime | None = None,
) -> Batch:
    """Write a batch and a waiting ledger row per recipient in one transaction, then send.

    The spending controls (rewards/services/controls.py) decide how: a batch the campaign's
    rule says needs approval waits for it, reserving nothing yet; any other reserves its rows
    in the budget of the month it goes out (ValidationError with the numbers if they do not
    fit, and nothing is written), then goes out at once or at `send_at`.

    A repeated `idempotency_key` returns the batch the first call made (a double-submitted
    form): the unique constraint settles a race between the two.

    A person (`created_by`) sends only on a campaign they may see: PermissionDenied otherwise,
    whatever the form offered. The command line (no person) sends on any.
    """
    if created_by is not None and not campaign_visible_to(user=created_by, campaign_pk=campaign.pk):
        raise PermissionDenied(NOT_YOUR_CAMPAIGN)
    if idempotency_key:
        existing = Batch.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if mode not in Mode.values:
        raise ValidationError(f"Unknown delivery mode: {mode!r}.")
    if not rows:
        raise ValidationError("A batch needs at least one recipient.")
    if not campaign.enabled:
        raise ValidationError(f"The campaign {campaign.name} is disabled.")
    now = timezone.now()
    if send_at is not None and send_at_too_far(send_at=send_at, now=now):
        raise ValidationError(TOO_FAR_AHEAD)
    if send_at is not None and send_at <= now:
        send_at = None  # a time already past: at once
    needs_approval = campaign.needs_approval(rows=len(rows))
    try:
        with transaction.atomic():
            month, crossed = None, []
            if not needs_approval:
                month = budget_month_of(send_at or now)
                crossed = budget_reserve(
                    campaign=campaign,
                    person_pk=created_by.pk if created_by else None,
                    rows=len(rows),
                    month=month,
                )
            if needs_approval:
                state = Batch.State.AWAITING_APPROVAL
            else:
                state = Batch.State.SCHEDULED if send_at else Batch.State.SENDING
            batch = Batch.objects.create(
                campaign=campaign,
                state=state,
                send_at=send_at,
                started_at=now if state == Batch.State.SENDING else None,
                budget_month=month,
                approval_needed=needs_approval,
                mode=mode,
                source=source,
                idempotency_key=idempotency_key or None,
                left_out=list(left_out),
                sent_anyway=list(sent_anyway),
                send_anyway_by=send_anyway_by,
                send_anyway_at=now if send_anyway_by else None,
                created_by=created_by,
                filename=filename[:255],
            )
            _sends_insert(batch=batch, rows=rows, now=now)
            audit_record(
                kind=Kind.BATCH_CREATED,
                actor=created_by,
                campaign=campaign,
                batch_pk=batch.pk,
                detail={"rows": len(rows), "mode": mode, "source": source},
            )
            if send_anyway_by is not None:
                # Confirmed although recipients of it were rewarded in the last 30 days.
                audit_record(
                    kind=Kind.BATCH_SEND_ANYWAY,
                    actor=send_anyway_by,
                    campaign=campaign,
                    batch_pk=batch.pk,
                    detail={"rows": len(rows)},
                )
            if state == Batch.State.SENDING:
                batch_enqueue(batch_id=batch.pk, chains=_chains_for(len(rows)))
                webhook_emit_batch(event=Event.BATCH_STARTED, batch_id=batch.pk)
            elif state == Batch.State.SCHEDULED:
                batch_start_enqueue(batch_id=batch.pk, at=send_at or now)
            else:
                # Awaiting approval, with a time or without: approval queues its start.
                notice_enqueue("approval_needed", batch_pk=batch.pk)
                webhook_emit_batch(event=Event.BATCH_AWAITING_APPROVAL, batch_id=batch.pk)
            for threshold in crossed:
                notice_enqueue(f"budget_{threshold}", batch_pk=batch.pk, campaign_pk=campaign.pk)
    except IntegrityError:
        if idempotency_key:
            # The other submission won the race for the key: show its batch.
            existing = Batch.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing
        raise
    logger.info(
        "batch %s: %d rows for campaign %s (%s, %s)", batch.pk, len(rows), campaign.pk, mode, state
    )
    return batch


def batch_start(*, batch_id: int, from_state: str, now: datetime) -> bool:
    """A batch goes out: from `from_state` (scheduled, or awaiting approval) to sending, its
    chains queued after the commit. False if it was no longer in `from_state`."""
    started = Batch.objects.filter(pk=batch_id, state=from_state).update(
        state=Batch.State.SENDING, started_at=now
    )
    if not started:
        return False
    waiting = Send.objects.filter(batch_id=batch_id, state=Send.State.WAITING).count()
    batch_enqueue(batch_id=batch_id, chains=_chains_for(waiting))
    webhook_emit_batch(event=Event.BATCH_STARTED, batch_id=batch_id)
    logger.info("batch %s started: %d rows waiting", batch_id, waiting)
    return True


def _events(
    sends: Iterable[Send | int],
    *,
    from_state: str,
    to_state: str | Sequence[str],
    note: str | Sequence[str] = "",
) -> None:
    """One SendEvent per row: the same transition for all, or one `to_state`/`note` each."""
    ids = [s if isinstance(s, int) else s.pk for s in sends]
    if not ids:
        return
    to_states = [to_state] * len(ids) if isinstance(to_state, str) else list(to_state)
    notes = [note] * len(ids) if isinstance(note, str) else list(note)
    now = timezone.now()
    if connection.vendor == "postgresql":
        ledger_postgresql.events_insert(
            ids=ids, from_state=from_state, to_states=to_states, notes=notes, now=now
        )
        return
    SendEvent.objects.bulk_create(
        [
            SendEvent(send_id=i, from_state=from_state, to_state=t, note=n)
            for i, t, n in zip(ids, to_states, notes, strict=True)
        ],
        batch_size=2_000,
    )


def _sends_insert(*, batch: Batch, rows: Sequence[RecipientRow], now: datetime) -> None:
    """The batch's ledger rows, all waiting. 50,000 rows must take well under a second."""
    if connection.vendor == "postgresql":
        ledger_postgresql.sends_insert(batch=batch, rows=rows, now=now)
        return
    Send.objects.bulk_create(
        (
            Send(
                batch=batch,
                row_number=row.row_number,
                recipient=row.recipient,
                name=row.name,
                updated_at=now,
            )
            for row in rows
        ),
        batch_size=5_000,
    )


def _move(
    *, ids: Iterable[int], from_state: str, to_state: str, note: str = "", **fields: object
) -> list[int]:
    """Move the rows among `ids` that are still in `from_state`; return the ones moved."""
    now = timezone.now()
    with transaction.atomic():
        moved = list(
            Send.objects.select_for_update()
            .filter(pk__in=list(ids), state=from_state)
            .values_list("pk", flat=True)
        )
        if moved:
            Send.objects.filter(pk__in=moved, state=from_state).update(
                state=to_state, updated_at=now, **fields
            )
            _events(moved, from_state=from_state, to_state=to_state, note=note)
    return moved


# A batch not yet started (scheduled, or awaiting approval: its creator withdraws it) or not
# yet finished.
CANCELLABLE = (
    Batch.State.AWAITING_APPROVAL,
    Batch.State.SCHEDULED,
    Batch.State.SENDING,
    Batch.State.PAUSED,
)


def batch_cancel(*, batch: Batch, actor: User | None = None) -> int:
    """Cancel a batch: rows not yet claimed are never sent. Returns how many were cancelled.

    Rows already in flight finish (their call may have made rewards); unknown rows are still
    reconciled, so that the ledger says what Mokugift made. Only its creator or an admin:
    PermissionDenied for anyone else.
    """
    _steer_check(batch=batch, actor=actor)
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk, state__in=CANCELLABLE).update(
        state=Batch.State.CANCELLED, paused_reason=""
    )
    # The claim's UPDATE checks the batch's state in the same statement, so from here on no
    # chunk can claim a waiting row of this batch.
    waiting = Send.objects.filter(batch=batch, state=Send.State.WAITING).values_list(
        "pk", flat=True
    )
    who = f"by {actor}" if actor else ""
    cancelled = _move(
        ids=list(waiting),
        from_state=Send.State.WAITING,
        to_state=Send.State.CANCELLED,
        note=f"Batch cancelled {who}".strip(),
        next_attempt_at=None,
    )
    batch_finish_if_done(batch_id=batch.pk, now=now)
    campaign = batch.campaign  # as given (without its passcode): a refresh forgets it
    batch.refresh_from_db()
    audit_record(
        kind=Kind.BATCH_CANCELLED,
        actor=actor,
        campaign=campaign,
        batch_pk=batch.pk,
        detail={"rows_not_sent": len(cancelled)},
    )
    logger.info("batch %s cancelled %s: %d rows not sent", batch.pk, who, len(cancelled))
    return len(cancelled)


def batch_resume(*, batch: Batch, actor: User | None = None) -> bool:
    """Resume a paused batch (e.g. after topping up moku-coins). False if it was not paused.
    Only its creator or an admin: PermissionDenied for anyone else."""
    _steer_check(batch=batch, actor=actor)
    resumed = Batch.objects.filter(pk=batch.pk, state=Batch.State.PAUSED).update(
        state=Batch.State.SENDING, paused_reason=""
    )
    batch.refresh_from_db()
    if not resumed:
        return False
    waiting = Send.objects.filter(batch=batch, state=Send.State.WAITING).count()
    audit_record(
        kind=Kind.BATCH_RESUMED,
        actor=actor,
        campaign=batch.campaign,
        batch_pk=batch.pk,
        detail={"rows_waiting": waiting},
    )
    batch_enqueue(batch_id=batch.pk, chains=_chains_for(waiting))
    logger.info("batch %s resumed by %s: %d rows waiting", batch.pk, actor, waiting)
    return True


def batch_retry_failed(*, batch: Batch, actor: User | None = None) -> int:
    """Send the failed rows again, and only those. Returns how many go back to waiting.

    Not in a cancelled batch: its rows would only wait until the sweep cancels them. Only its
    creator or an admin: PermissionDenied for anyone else. They must fit the monthly budgets
    again: ValidationError with the numbers, and nothing moves, if they do not.
    """
    _steer_check(batch=batch, actor=actor)
    batch.refresh_from_db(fields=["state", "budget_month"])
    if batch.state == Batch.State.CANCELLED:
        return 0
    failed = list(
        Send.objects.filter(batch=batch, state=Send.State.FAILED).values_list("pk", flat=True)
    )
    campaign = batch.campaign
    budgeted = campaign.monthly_budget is not None or campaign.monthly_budget_per_person is not None
    with transaction.atomic():
        if failed and budgeted:
            # Sent again, they go out this month: a batch counted in a month that is over
            # (or in none) would send them outside this month's budget.
            if batch.budget_month != budget_month_of(timezone.now()):
                raise ValidationError(
                    f"The {len(failed)} failed rows of batch {batch.pk} were counted in a month "
                    "that is over: sent again they would go out this month outside its budget. "
                    "Send them in a new batch. Nothing was sent."
                )
            # A failed row gave its budget back (controls.budget_used): sent again, it takes
            # it again, so it must still fit (ValidationError with the numbers if not).
            budget_reserve(
                campaign=batch.campaign,
                person_pk=batch.created_by_id,
                rows=len(failed),
                month=batch.budget_month,
            )
        moved = _move(
            ids=failed,
            from_state=Send.State.FAILED,
            to_state=Send.State.WAITING,
            note=f"Sent again by {actor}" if actor else "Sent again",
            attempts=0,
            next_attempt_at=None,
            error_code=None,
            error_message="",
        )
    if moved:
        audit_record(
            kind=Kind.BATCH_RETRIED,
            actor=actor,
            campaign=batch.campaign,
            batch_pk=batch.pk,
            detail={"rows_sent_again": len(moved)},
        )
        Batch.objects.filter(pk=batch.pk, state=Batch.State.DONE).update(
            state=Batch.State.SENDING, finished_at=None
        )
        batch.refresh_from_db()
        if batch.state == Batch.State.SENDING:
            batch_enqueue(batch_id=batch.pk, chains=_chains_for(len(moved)))
    return len(moved)


def batch_finish_if_done(*, batch_id: int, now: datetime | None = None) -> bool:
    """Mark a batch done (or a cancelled one finished) once no row of it can move any more."""
    if Send.objects.filter(batch_id=batch_id, state__in=OPEN_STATES).exists():
        return False
    now = now or timezone.now()
    done = Batch.objects.filter(pk=batch_id, state=Batch.State.SENDING).update(
        state=Batch.State.DONE, finished_at=now
    )
    ended = Batch.objects.filter(
        pk=batch_id, state=Batch.State.CANCELLED, finished_at__isnull=True
    ).update(finished_at=now)
    if done:
        logger.info("batch %s done", batch_id)
        notice_enqueue("batch_finished", batch_pk=batch_id)
    if done or ended:
        webhook_emit_batch(event=Event.BATCH_FINISHED, batch_id=batch_id)
    if done or ended:
        # The home page's month figures: its failures count from now (after the commit).
        transaction.on_commit(lambda: ledger_months_refresh_after(f"batch {batch_id}"))
    return True


def batch_pause(*, batch_id: int, reason: str) -> None:
    """A sending batch stops claiming rows until someone resumes it (`batch_resume`)."""
    paused = Batch.objects.filter(pk=batch_id, state=Batch.State.SENDING).update(
        state=Batch.State.PAUSED, paused_reason=reason
    )
    if paused:
        logger.warning("batch %s paused: %s", batch_id, reason)
        notice_enqueue("batch_paused", batch_pk=batch_id)
        webhook_emit_batch(event=Event.BATCH_PAUSED, batch_id=batch_id)


def batch_wake(*, batch_id: int, chains: int | None = None) -> None:
    """Start chains for a batch's waiting rows (when the first retry is due), or finish it.

    `chains` None: as many as the waiting rows need, up to MOKUGIFT_SEND_PARALLELISM.
    """
    now = timezone.now()
    if chains and (
        Send.objects.filter(batch_id=batch_id, state=Send.State.WAITING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .exists()
    ):
        # A row is due now (a chain going on, the usual case): what the count below would
        # decide, without counting every waiting row of a 50,000-row batch after each chunk.
        batch_enqueue(batch_id=batch_id, chains=chains)
        return
    waiting = Send.objects.filter(batch_id=batch_id, state=Send.State.WAITING).aggregate(
        due=Min(Coalesce("next_attempt_at", Value(now))), count=Count("pk")
    )
    if not waiting["count"]:
        batch_finish_if_done(batch_id=batch_id, now=now)
        return
    wait = (waiting["due"] - now).total_seconds()
    batch_enqueue(
        batch_id=batch_id,
        chains=chains or _chains_for(waiting["count"]),
        countdown=wait + 0.05 if wait > 0 else None,
    )
