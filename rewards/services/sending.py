"""Sending rewards: the ledger's writes, from a batch's creation to every row's end.

The ledger row (`Send`) is written before anything is enqueued, and only a conditional UPDATE
moves it (`filter(pk=..., state=...).update(...)`), so two workers, a redelivered task or a
double click can never both send it. The states:

    waiting -> sending -> sent | failed | unknown
    sending -> waiting     (105: the batch is paused; 110 or a failure before the server: retry)
    unknown -> sent | waiting | failed   (reconciliation: found, provably absent, out of tries)
    waiting -> cancelled   (the batch was cancelled before the row was claimed)

The work is done by chains of `batch_send_chunk` tasks (see rewards/tasks/sending.py, and
rewards/services/enqueue.py for how they are queued): each
task claims one chunk of waiting rows, makes one API call for it outside any transaction,
records the answer row by row, and enqueues its successor. A batch runs
MOKUGIFT_SEND_PARALLELISM chains at once, so several workers share it. Nothing depends on the
broker delivering a task exactly once: the periodic sweep (rewards/services/sweep.py) finds
what a dead worker left behind.

A campaign whose endpoint misbehaves is backed off (rewards/services/backoff.py): its chains
end instead of calling, and come back one per batch when the wait is over; until Mokugift
answers again, a campaign has one call in flight at a time.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Min, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.crypto import DecryptionError
from rewards.models import Batch, Send, SendEvent
from rewards.models.ledger import OPEN_STATES, LeftOutRow, Mode
from rewards.mokugift import (
    INTERNAL_ERROR,
    NO_COINS,
    ApiError,
    MokugiftClient,
    MokugiftError,
    MultiResult,
    Recipient,
    RecipientRefused,
    TransportError,
)
from rewards.recipients import recipient_key
from rewards.selectors.backoff import backoff_seconds_left
from rewards.services import ledger_postgresql
from rewards.services.backoff import campaign_backoff_clear, campaign_backoff_record
from rewards.services.enqueue import batch_enqueue, reconcile_enqueue

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from campaigns.models import Campaign

logger = logging.getLogger(__name__)

# The Mokugift messages in plain words, for the results table and CSV.
PLAIN_WORDS = {
    100: "The request used the wrong HTTP method (a bug on our side).",
    101: "Mokugift does not know this campaign ID.",
    102: "Mokugift refused the campaign's passcode: check it on the campaign page.",
    103: "The campaign is disabled at Mokugift.",
    104: "The campaign has expired at Mokugift (by date or budget).",
    105: "The Mokugift account has no moku-coins left.",
    110: "Mokugift had an internal error.",
    111: "The recipient's email address or ID is missing.",
    112: "Mokugift says the email address is not valid.",
    113: "Mokugift refused the request's parameters (e.g. a name it cannot carry).",
    114: "Too many rewards in one call (a bug on our side).",
}
PAUSED_FOR_KEYS = (
    "Paused: the campaign's passcode cannot be decrypted with any key in "
    "FIELD_ENCRYPTION_KEYS. An admin must put the missing key back (or set the passcode "
    "again), then resume the batch; nothing was sent and no row was claimed."
)
PAUSED_FOR_COINS = (
    "Paused: Mokugift says the account has no moku-coins left (error 105, Lack of moku-coins). "
    "Top the account up, then resume the batch; rows not yet sent are kept waiting."
)


@dataclass(frozen=True)
class RecipientRow:
    """One intended reward as the upload (or the form) gave it."""

    row_number: int
    recipient: str
    name: str = ""


def api_error_words(*, code: int | None, description: str = "") -> str:
    """A Mokugift error as a sentence a marketer can act on, with the code for support."""
    plain = PLAIN_WORDS.get(code or 0, "Mokugift refused the reward.")
    said = f" (Mokugift error {code}: {description})" if description else f" (error {code})"
    return plain + (said if code else "")


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
    send_anyway_by: User | None = None,
    filename: str = "",
) -> Batch:
    """Write a batch and a waiting ledger row per recipient in one transaction, then send.

    A repeated `idempotency_key` returns the batch the first call made (a double-submitted
    form): the unique constraint settles a race between the two.
    """
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
    try:
        with transaction.atomic():
            batch = Batch.objects.create(
                campaign=campaign,
                mode=mode,
                source=source,
                idempotency_key=idempotency_key or None,
                left_out=list(left_out),
                send_anyway_by=send_anyway_by,
                send_anyway_at=now if send_anyway_by else None,
                created_by=created_by,
                filename=filename[:255],
            )
            _sends_insert(batch=batch, rows=rows, now=now)
            batch_enqueue(batch_id=batch.pk, chains=_chains_for(len(rows)))
    except IntegrityError:
        if idempotency_key:
            # The other submission won the race for the key: show its batch.
            existing = Batch.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing
        raise
    logger.info("batch %s: %d rows for campaign %s (%s)", batch.pk, len(rows), campaign.pk, mode)
    return batch


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


def batch_cancel(*, batch: Batch, actor: User | None = None) -> int:
    """Cancel a batch: rows not yet claimed are never sent. Returns how many were cancelled.

    Rows already in flight finish (their call may have made rewards); unknown rows are still
    reconciled, so that the ledger says what Mokugift made.
    """
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk, state__in=[Batch.State.SENDING, Batch.State.PAUSED]).update(
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
    batch.refresh_from_db()
    logger.info("batch %s cancelled %s: %d rows not sent", batch.pk, who, len(cancelled))
    return len(cancelled)


def batch_resume(*, batch: Batch, actor: User | None = None) -> bool:
    """Resume a paused batch (e.g. after topping up moku-coins). False if it was not paused."""
    resumed = Batch.objects.filter(pk=batch.pk, state=Batch.State.PAUSED).update(
        state=Batch.State.SENDING, paused_reason=""
    )
    batch.refresh_from_db()
    if not resumed:
        return False
    waiting = Send.objects.filter(batch=batch, state=Send.State.WAITING).count()
    batch_enqueue(batch_id=batch.pk, chains=_chains_for(waiting))
    logger.info("batch %s resumed by %s: %d rows waiting", batch.pk, actor, waiting)
    return True


def batch_retry_failed(*, batch: Batch, actor: User | None = None) -> int:
    """Send the failed rows again, and only those. Returns how many go back to waiting.

    Not in a cancelled batch: its rows would only wait until the sweep cancels them.
    """
    batch.refresh_from_db(fields=["state"])
    if batch.state == Batch.State.CANCELLED:
        return 0
    failed = Send.objects.filter(batch=batch, state=Send.State.FAILED).values_list("pk", flat=True)
    moved = _move(
        ids=list(failed),
        from_state=Send.State.FAILED,
        to_state=Send.State.WAITING,
        note=f"Sent again by {actor}" if actor else "Sent again",
        attempts=0,
        next_attempt_at=None,
        error_code=None,
        error_message="",
    )
    if moved:
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
    Batch.objects.filter(pk=batch_id, state=Batch.State.CANCELLED, finished_at__isnull=True).update(
        finished_at=now
    )
    if done:
        logger.info("batch %s done", batch_id)
    return True


# --- The worker's side: claim, call, record -----------------------------------------------


def sends_claim(*, batch_id: int, limit: int) -> list[Send]:
    """Claim up to `limit` due waiting rows of a sending batch for one API call.

    One conditional UPDATE moves them to *sending* (`state = waiting` is re-checked by the
    UPDATE itself), so a row another claim took first is simply not ours. On PostgreSQL the
    candidates are locked with SKIP LOCKED, so concurrent claims take disjoint rows instead of
    queueing behind each other. A recipient appears at most once per claim: the answer of a
    multi call names rewards by recipient, not by position.
    """
    now = timezone.now()
    mode = Batch.objects.filter(pk=batch_id).values_list("mode", flat=True).first()
    if mode is None:
        return []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            claimed = ledger_postgresql.sends_claim(batch_id=batch_id, limit=limit, now=now)
        else:
            claimed = _claim_orm(batch_id=batch_id, limit=limit, now=now)
        seen: set[str] = set()
        ours: list[Send] = []
        twice: list[Send] = []
        for send in claimed:
            key = recipient_key(by_id=mode == Mode.LINK_ID, recipient=send.recipient)
            (twice if key in seen else ours).append(send)
            seen.add(key)
        if twice:
            # The same recipient twice in one call: the later row waits for another chunk.
            Send.objects.filter(
                pk__in=[t.pk for t in twice], state=Send.State.SENDING, attempt_started_at=now
            ).update(state=Send.State.WAITING, attempts=F("attempts") - 1, updated_at=now)
            _events(
                twice,
                from_state=Send.State.SENDING,
                to_state=Send.State.WAITING,
                note="same recipient in this call already: next chunk",
            )
    return ours


def _claim_orm(*, batch_id: int, limit: int, now: datetime) -> list[Send]:
    """The same claim for SQLite (whose writers are serialized: BEGIN IMMEDIATE)."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    ids = list(
        Send.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(due, batch_id=batch_id, batch__state=Batch.State.SENDING)
        .filter(state=Send.State.WAITING)
        .order_by("row_number")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return []
    Send.objects.filter(
        pk__in=ids, state=Send.State.WAITING, batch__state=Batch.State.SENDING
    ).update(
        state=Send.State.SENDING,
        attempts=F("attempts") + 1,
        attempt_started_at=now,
        first_attempt_at=Coalesce(F("first_attempt_at"), Value(now)),
        next_attempt_at=None,
        updated_at=now,
    )
    claimed = list(
        Send.objects.filter(pk__in=ids, state=Send.State.SENDING, attempt_started_at=now)
        .only("pk", "batch_id", "row_number", "recipient", "name", "attempts", "attempt_started_at")
        .order_by("row_number")
    )
    _events(claimed, from_state=Send.State.WAITING, to_state=Send.State.SENDING)
    return claimed


@dataclass
class Outcome:
    """What the answer of one call means for one claimed row."""

    send: Send
    state: str
    note: str = ""
    remote_id: str = ""
    url: str = ""
    transaction_id: str = ""
    error_code: int | None = None
    error_message: str = ""
    next_attempt_at: datetime | None = None
    attempts: int | None = None


def _retry_or_fail(send: Send, *, code: int | None, words: str, now: datetime) -> Outcome:
    if send.attempts >= settings.MOKUGIFT_MAX_ATTEMPTS:
        return Outcome(
            send,
            Send.State.FAILED,
            note="out of attempts",
            error_code=code,
            error_message=f"Gave up after {send.attempts} attempts. {words}",
        )
    delay = retry_delay(attempts=send.attempts)
    return Outcome(
        send,
        Send.State.WAITING,
        note=f"retry in {delay:.1f} s: {words}",
        error_code=code,
        error_message=words,
        next_attempt_at=now + timedelta(seconds=delay),
    )


def _outcomes_for_error(sends: list[Send], error: MokugiftError, *, now: datetime) -> list[Outcome]:
    """One error for the whole call: every claimed row shares its fate."""
    code = error.code if isinstance(error, ApiError) else None
    if isinstance(error, ApiError) and code == NO_COINS:
        # Not an attempt: nothing was made, and the row waits for the account to be topped up.
        return [
            Outcome(
                s,
                Send.State.WAITING,
                note="paused: no moku-coins (105)",
                attempts=s.attempts - 1,
                error_code=code,
                error_message=api_error_words(code=code, description=error.description),
            )
            for s in sends
        ]
    if isinstance(error, RecipientRefused) and error.index is not None and len(sends) > 1:
        # Refused by the client before any request: only that row fails; the others were not
        # sent and wait for the next chunk (not counted as an attempt).
        return [
            Outcome(
                s,
                Send.State.FAILED,
                note=str(error),
                error_message=f"Not sent: {error.reason}",
            )
            if i == error.index
            else Outcome(s, Send.State.WAITING, note="requeued", attempts=s.attempts - 1)
            for i, s in enumerate(sends)
        ]
    if error.outcome_unknown:
        words = f"Outcome unknown ({error}); checking with Mokugift."
        return [Outcome(s, Send.State.UNKNOWN, note=str(error), error_message=words) for s in sends]
    if isinstance(error, ApiError):
        words = api_error_words(code=code, description=error.description)
    elif isinstance(error, RecipientRefused):
        words = f"Not sent: {error.reason}"
    else:
        words = f"Could not reach Mokugift: {error}"
    if error.retryable:
        return [_retry_or_fail(s, code=code, words=words, now=now) for s in sends]
    return [
        Outcome(s, Send.State.FAILED, note=words, error_code=code, error_message=words)
        for s in sends
    ]


def _outcomes_for_multi(
    sends: list[Send], result: MultiResult, *, mode: str, now: datetime
) -> list[Outcome]:
    """A multi call's answer (Success or Part_Failed), matched to the rows by recipient."""
    by_key = {recipient_key(by_id=mode == Mode.LINK_ID, recipient=s.recipient): s for s in sends}
    outcomes: dict[int, Outcome] = {}
    for reward in result.rewards:
        send = by_key.get(recipient_key(by_id=mode == Mode.LINK_ID, recipient=reward.recipient))
        if send is not None and send.pk not in outcomes:
            outcomes[send.pk] = Outcome(
                send,
                Send.State.SENT,
                remote_id=str(reward.id),
                url=reward.url or "",
                transaction_id=result.transaction_id or "",
            )
    for unsent in result.unsent:
        send = by_key.get(
            recipient_key(by_id=mode == Mode.LINK_ID, recipient=unsent.recipient or "")
        )
        if send is None or send.pk in outcomes:
            continue
        code = unsent.code
        words = api_error_words(code=code, description=unsent.description or "")
        if code == NO_COINS:
            outcomes[send.pk] = Outcome(
                send,
                Send.State.WAITING,
                note="paused: no moku-coins (105)",
                attempts=send.attempts - 1,
                error_code=code,
                error_message=words,
            )
        elif code == INTERNAL_ERROR:
            # 110 for one item, as for a whole create call: it may have been made.
            outcomes[send.pk] = Outcome(
                send,
                Send.State.UNKNOWN,
                note=words,
                error_code=code,
                error_message=f"Outcome unknown ({words}); checking with Mokugift.",
            )
        else:
            outcomes[send.pk] = Outcome(
                send, Send.State.FAILED, note=words, error_code=code, error_message=words
            )
    for send in sends:
        if send.pk not in outcomes:
            # Neither made nor refused in the answer: we cannot tell, so we ask Mokugift.
            outcomes[send.pk] = Outcome(
                send,
                Send.State.UNKNOWN,
                note="missing from the answer",
                error_message="Outcome unknown (the answer did not mention this recipient); "
                "checking with Mokugift.",
            )
    return [outcomes[s.pk] for s in sends]


def _apply(o: Outcome, *, now: datetime) -> Send:
    s = o.send
    s.state = o.state
    s.remote_id = o.remote_id
    s.url = o.url[:500]
    s.transaction_id = o.transaction_id[:100]
    s.error_code = o.error_code
    s.error_message = o.error_message
    s.next_attempt_at = o.next_attempt_at
    s.attempts = o.attempts if o.attempts is not None else s.attempts
    s.sent_at = now if o.state == Send.State.SENT else None
    s.updated_at = now
    return s


def _record(outcomes: list[Outcome], *, claimed_at: datetime, now: datetime) -> list[Outcome]:
    """Write every row's outcome in one short transaction; return the ones written.

    Only rows still *sending* under this claim are written: if the sweep gave up on this call
    (it took longer than the timeouts allow) the row is the sweep's now, and reconciliation
    will find the reward this answer names.
    """
    if not outcomes:
        return []
    rows = [_apply(o, now=now) for o in outcomes]
    notes = [(o.note or o.remote_id)[:1000] for o in outcomes]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            owned = ledger_postgresql.sends_record(
                rows, notes=notes, claimed_at=claimed_at, now=now
            )
            return [o for o in outcomes if o.send.pk in owned]
        owned = set(
            Send.objects.select_for_update()
            .filter(
                pk__in=[s.pk for s in rows],
                state=Send.State.SENDING,
                attempt_started_at=claimed_at,
            )
            .values_list("pk", flat=True)
        )
        Send.objects.filter(state=Send.State.SENDING, attempt_started_at=claimed_at).bulk_update(
            [s for s in rows if s.pk in owned], ledger_postgresql.RECORD_FIELDS, batch_size=500
        )
        written = [o for o in outcomes if o.send.pk in owned]
        _events(
            [o.send for o in written],
            from_state=Send.State.SENDING,
            to_state=[o.state for o in written],
            note=[(o.note or o.remote_id)[:1000] for o in written],
        )
    return written


def batch_send_chunk(*, batch_id: int) -> None:
    """Claim one chunk of the batch, make one API call for it, record the answer, and keep
    the chain going. Called by the `batch_send_chunk` task; safe to run twice or concurrently.
    """
    batch = (
        Batch.objects.filter(pk=batch_id)
        .select_related("campaign", "campaign__backoff")
        .defer("campaign__passcode")
        .first()
    )
    if batch is None or batch.state != Batch.State.SENDING:
        return
    backoff = getattr(batch.campaign, "backoff", None)
    if backoff is not None and backoff.failures:
        if backoff_seconds_left(backoff=backoff):
            # Backed off: this chain ends; the end of the wait brings one back for the batch.
            return
        in_flight = Send.objects.filter(
            batch__campaign_id=batch.campaign_id, state=Send.State.SENDING
        )
        if in_flight.exists():
            # The wait is over, and another call of the campaign is finding out whether
            # Mokugift answers again: one call at a time until it does.
            return
    # The passcode is decrypted here, at the moment of the call, and lives only in the client.
    # Before the claim: a passcode no key can read pauses the batch with its rows still
    # waiting, instead of leaving them claimed for the sweep to call "outcome unknown".
    try:
        client = MokugiftClient.for_campaign(batch.campaign)
    except DecryptionError:
        batch_pause(batch_id=batch_id, reason=PAUSED_FOR_KEYS)
        return
    sends = sends_claim(batch_id=batch_id, limit=settings.MOKUGIFT_CHUNK_SIZE)
    if not sends:
        _batch_idle(batch_id=batch_id)
        return
    claimed_at = sends[0].attempt_started_at
    assert claimed_at is not None  # the claim set it
    failure = None
    try:
        if len(sends) == 1:
            # The single call, so that the link modes get their URL for a one-off reward.
            s = sends[0]
            created = client.create_reward(mode=batch.mode, recipient=s.recipient, name=s.name)
            outcomes = [
                Outcome(
                    s,
                    Send.State.SENT,
                    remote_id=str(created.reward.id),
                    url=created.reward.url or "",
                    transaction_id=created.transaction_id or "",
                )
            ]
        else:
            result = client.create_rewards(
                mode=batch.mode,
                recipients=[Recipient(address=s.recipient, name=s.name) for s in sends],
            )
            outcomes = _outcomes_for_multi(sends, result, mode=batch.mode, now=timezone.now())
    except MokugiftError as error:
        outcomes = _outcomes_for_error(sends, error, now=timezone.now())
        failure = error
    now = timezone.now()
    written = _record(outcomes, claimed_at=claimed_at, now=now)
    states: dict[str, int] = {}
    for o in written:
        states[o.state] = states.get(o.state, 0) + 1
    logger.info("batch %s: chunk of %d rows: %s", batch_id, len(sends), states)

    backed_off = answered_again = False
    if isinstance(failure, TransportError):
        # A timeout, the deadline, a body that is not the API's, a 5xx: the campaign waits.
        campaign_backoff_record(
            campaign_pk=batch.campaign_id, reason=str(failure), call_started_at=claimed_at
        )
        backed_off = True
    elif (
        backoff is not None
        and backoff.failures
        and (failure is None or isinstance(failure, ApiError))
    ):
        answered_again = campaign_backoff_clear(campaign_pk=batch.campaign_id)
    if any(o.error_code == NO_COINS and o.state == Send.State.WAITING for o in written):
        batch_pause(batch_id=batch_id, reason=PAUSED_FOR_COINS)
        return
    if states.get(Send.State.UNKNOWN):
        # Soon after, not only on the sweep's beat: a bulk send with faults should not wait.
        reconcile_enqueue(
            campaign_pk=batch.campaign_id, countdown=settings.MOKUGIFT_RECONCILE_SETTLE
        )
    if backed_off:
        # No successor: the end of the backoff brings a chain back (campaign_sending_resume).
        batch_finish_if_done(batch_id=batch_id)
        return
    if answered_again:
        # Every batch of the campaign gets back the chains the backoff had stopped; this
        # chain's place is among them.
        for other in Batch.objects.filter(
            campaign_id=batch.campaign_id, state=Batch.State.SENDING
        ).values_list("pk", flat=True):
            batch_wake(batch_id=other)
        return
    _batch_idle(batch_id=batch_id, successor=True)


def batch_pause(*, batch_id: int, reason: str) -> None:
    """A sending batch stops claiming rows until someone resumes it (`batch_resume`)."""
    Batch.objects.filter(pk=batch_id, state=Batch.State.SENDING).update(
        state=Batch.State.PAUSED, paused_reason=reason
    )
    logger.warning("batch %s paused: %s", batch_id, reason)


def batch_wake(*, batch_id: int, chains: int | None = None) -> None:
    """Start chains for a batch's waiting rows (when the first retry is due), or finish it.

    `chains` None: as many as the waiting rows need, up to MOKUGIFT_SEND_PARALLELISM.
    """
    now = timezone.now()
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


def _batch_idle(*, batch_id: int, successor: bool = False) -> None:
    """After a chunk: the chain goes on. After a claim that found nothing: the chain ends,
    unless the rows left wait for a retry that is not due yet (then it wakes up for it)."""
    if successor:
        batch_wake(batch_id=batch_id, chains=1)
        return
    now = timezone.now()
    due_now = Send.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        batch_id=batch_id,
        state=Send.State.WAITING,
    ).exists()
    if not due_now:
        # Nothing due: other chains hold the due rows, or only later retries are left.
        batch_wake(batch_id=batch_id, chains=1)
