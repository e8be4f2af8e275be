"""The worker's side of a send: claim a chunk of a batch's rows, make one call, record it.

A chunk claims up to MOKUGIFT_CHUNK_SIZE due waiting rows with one conditional UPDATE, makes
one API call for them outside any transaction, and writes every row's outcome (only to rows
still *sending* under this claim). `batch_send_chain`, what the `batch_send_chunk` task runs
(rewards/tasks/sending.py), makes chunk after chunk in one task for about a second, writing a
plain answer while the next chunk's call is out, then queues a successor; `batch_send_chunk`
makes one. Safe to run twice or concurrently. The batch's life cycle around it (creation,
cancel, resume, retry, the end) is in sending.py.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.crypto import DecryptionError
from rewards.models import Batch, CampaignBackoff, Send
from rewards.models.ledger import Mode
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
from rewards.services.enqueue import reconcile_enqueue
from rewards.services.ledger_postgresql import ClaimedSend
from rewards.services.sending import (
    PAUSED_FOR_COINS,
    PAUSED_FOR_KEYS,
    _events,
    api_error_words,
    batch_finish_if_done,
    batch_pause,
    batch_wake,
    outcome_unknown_words,
    retry_delay,
)

logger = logging.getLogger(__name__)

# A claimed row: a model instance from the ORM's claim, a lighter ClaimedSend from
# PostgreSQL's (with the same fields).
Claimed = Send | ClaimedSend


def sends_claim(*, batch_id: int, limit: int, mode: str | None = None) -> list[Claimed]:
    """Claim up to `limit` due waiting rows of a sending batch for one API call.

    One conditional UPDATE moves them to *sending* (`state = waiting` is re-checked by the
    UPDATE itself), so a row another claim took first is simply not ours. On PostgreSQL the
    candidates are locked with SKIP LOCKED, so concurrent claims take disjoint rows instead of
    queueing behind each other. A recipient appears at most once per claim: the answer of a
    multi call names rewards by recipient, not by position. `mode`: the batch's, when the
    caller has just read it (a query fewer per chunk).
    """
    now = timezone.now()
    if mode is None:
        mode = Batch.objects.filter(pk=batch_id).values_list("mode", flat=True).first()
    if mode is None:
        return []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            claimed: list[Claimed] = list(
                ledger_postgresql.sends_claim(batch_id=batch_id, limit=limit, now=now)
            )
        else:
            claimed = list(_claim_orm(batch_id=batch_id, limit=limit, now=now))
        seen: set[str] = set()
        ours: list[Claimed] = []
        twice: list[Claimed] = []
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
                [t.pk for t in twice],
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

    send: Claimed
    state: str
    note: str = ""
    remote_id: str = ""
    url: str = ""
    transaction_id: str = ""
    error_code: int | None = None
    error_message: str = ""
    next_attempt_at: datetime | None = None
    attempts: int | None = None


def _retry_or_fail(send: Claimed, *, code: int | None, words: str, now: datetime) -> Outcome:
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


def _outcomes_for_error(
    sends: list[Claimed], error: MokugiftError, *, now: datetime
) -> list[Outcome]:
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
        said = (
            api_error_words(code=code, description=error.description)
            if isinstance(error, ApiError)
            else str(error)
        )
        words = outcome_unknown_words(said=said)
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
    sends: list[Claimed], result: MultiResult, *, mode: str, now: datetime
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
                error_message=outcome_unknown_words(said=words),
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


def _apply(o: Outcome, *, now: datetime) -> Claimed:
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
    """Write every row's outcome at once (one statement on PostgreSQL, one short transaction
    elsewhere); return the ones written.

    Only rows still *sending* under this claim are written: if the sweep gave up on this call
    (it took longer than the timeouts allow) the row is the sweep's now, and reconciliation
    will find the reward this answer names.
    """
    if not outcomes:
        return []
    rows = [_apply(o, now=now) for o in outcomes]
    notes = [(o.note or o.remote_id)[:1000] for o in outcomes]
    if connection.vendor == "postgresql":
        # One statement, the rows and their history: atomic without a transaction of ours
        # (BEGIN and COMMIT would be two more round trips a chunk).
        owned = ledger_postgresql.sends_record(rows, notes=notes, claimed_at=claimed_at, now=now)
        return [o for o in outcomes if o.send.pk in owned]
    with transaction.atomic():
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
            # The ORM's claim made model instances.
            [s for s in rows if isinstance(s, Send) and s.pk in owned],
            ledger_postgresql.RECORD_FIELDS,
            batch_size=500,
        )
        written = [o for o in outcomes if o.send.pk in owned]
        _events(
            [o.send.pk for o in written],
            from_state=Send.State.SENDING,
            to_state=[o.state for o in written],
            note=[(o.note or o.remote_id)[:1000] for o in written],
        )
    return written


# How long one task goes on sending chunk after chunk of its batch before it hands the chain
# to a successor task at the back of the queue. Going on in the same process spares each chunk
# a round trip through the broker (publish, deliver, a task's start); handing over after about
# a second keeps a bulk batch from holding its workers while other tasks (a one-reward send,
# another batch, the sweep) wait in the queue behind it for longer than that.
CHAIN_SECONDS = 1.0


def batch_send_chain(*, batch_id: int, seconds: float | None = None) -> None:
    """What the `batch_send_chunk` task runs: chunks of the batch one after the other, each
    exactly as `batch_send_chunk` makes it, for up to about `seconds` (CHAIN_SECONDS), then a
    successor task for the rest. The chain ends as a single chunk would end it (nothing left
    to claim, the batch paused, cancelled or backed off): each chunk re-reads the batch and
    its campaign. Safe to run twice or concurrently, as each chunk is.

    An answer that asks nothing of the chain (every row sent or refused, no error, the
    campaign not backed off: `_answer_is_plain`) is written while the next chunk's call is out:
    the next rows are claimed first (a claim is made before its call, always), their call goes
    out from a thread of this task, and the answer is written meanwhile, in this thread (the
    call touches no database). Any other answer is written before anything else is claimed,
    as it may pause, back off or end the chain; and the last is written before the chain
    ends or hands over."""
    until = time.monotonic() + (CHAIN_SECONDS if seconds is None else seconds)
    unwritten: tuple[_Chunk, _Answer] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mokugift-call") as caller:
        try:
            while True:
                chunk = _chunk_claim(batch_id=batch_id)
                if chunk is None and unwritten is not None:
                    # Our own rows, still *sending*, may be what stopped this claim (a call of
                    # the campaign in flight as its backoff ends): written, the claim is
                    # made again, and this chain may be the one that finds out.
                    held, unwritten = unwritten, None
                    _chunk_record(*held)
                    continue
                if chunk is None:
                    return
                if not chunk.sends:
                    if unwritten is not None:
                        held, unwritten = unwritten, None
                        _chunk_record(*held)
                    _batch_idle(batch_id=batch_id)
                    return
                answering = caller.submit(_chunk_call, chunk)
                if unwritten is not None:
                    held, unwritten = unwritten, None
                    try:
                        _chunk_record(*held)
                    except BaseException:
                        _chunk_record_when_answered(chunk, answering)
                        raise
                answer = answering.result()
                if _answer_is_plain(chunk, answer):
                    unwritten = (chunk, answer)
                elif not _chunk_record(chunk, answer):
                    return
                if time.monotonic() >= until:
                    if unwritten is not None:
                        held, unwritten = unwritten, None
                        _chunk_record(*held)
                    _batch_idle(batch_id=batch_id, successor=True)
                    return
        finally:
            if unwritten is not None:
                # An error between an answer and its write (the next claim failed): the
                # answer is known, so it is written, not left for the sweep to call unknown.
                _chunk_record(*unwritten)


def _chunk_record_when_answered(chunk: _Chunk, answering: Future[_Answer]) -> None:
    """The answer of a call that was out when writing another failed, written if it can be;
    else its rows are the sweep's, as a worker's crash would leave them."""
    try:
        _chunk_record(chunk, answering.result())
    except Exception:
        logger.exception(
            "batch %s: a call's answer could not be written; its rows wait for the sweep",
            chunk.batch.pk,
        )


def batch_send_chunk(*, batch_id: int, successor: bool = True) -> bool:
    """Claim one chunk of the batch, make one API call for it, record the answer, and keep
    the chain going: with a successor task (`successor`), or by returning True, for the
    caller to make the next chunk itself. False: this chain ends here (the next step, if any,
    is already arranged). Safe to run twice or concurrently.
    """
    chunk = _chunk_claim(batch_id=batch_id)
    if chunk is None:
        return False
    if not chunk.sends:
        _batch_idle(batch_id=batch_id)
        return False
    if not _chunk_record(chunk, _chunk_call(chunk)):
        return False
    if successor:
        _batch_idle(batch_id=batch_id, successor=True)
    return True


@dataclass(slots=True)
class _Chunk:
    """Rows claimed for one call, with what the call and its answer need."""

    batch: Batch
    backoff: CampaignBackoff | None
    client: MokugiftClient
    sends: list[Claimed]
    started: float


@dataclass(slots=True)
class _Answer:
    outcomes: list[Outcome]
    failure: MokugiftError | None
    call_seconds: float
    # When it came: the rows' sent_at and their history's, however soon it is written.
    at: datetime


def _chunk_claim(*, batch_id: int) -> _Chunk | None:
    """The batch re-read, and its next rows claimed. None: the chain ends here (the batch is
    not sending, its campaign is backed off or its passcode unreadable). No rows: nothing due
    to claim (the caller ends the chain with `_batch_idle`, once its rows are written)."""
    started = time.perf_counter()
    # The passcode is decrypted here, with the batch (one query), and lives only in the client.
    # Before the claim: a passcode no key can read pauses the batch with its rows still
    # waiting, instead of leaving them claimed for the sweep to call "outcome unknown".
    try:
        batch = (
            Batch.objects.filter(pk=batch_id)
            .select_related("campaign", "campaign__backoff")
            .first()
        )
    except DecryptionError:
        batch_pause(batch_id=batch_id, reason=PAUSED_FOR_KEYS)
        return None
    if batch is None or batch.state != Batch.State.SENDING:
        return None
    backoff = getattr(batch.campaign, "backoff", None)
    if backoff is not None and backoff.failures:
        if backoff_seconds_left(backoff=backoff):
            # Backed off: this chain ends; the end of the wait brings one back for the batch.
            return None
        in_flight = Send.objects.filter(
            batch__campaign_id=batch.campaign_id, state=Send.State.SENDING
        )
        if in_flight.exists():
            # The wait is over, and another call of the campaign is finding out whether
            # Mokugift answers again: one call at a time until it does.
            return None
    client = MokugiftClient.for_campaign(batch.campaign)
    sends = sends_claim(batch_id=batch_id, limit=settings.MOKUGIFT_CHUNK_SIZE, mode=batch.mode)
    return _Chunk(batch=batch, backoff=backoff, client=client, sends=sends, started=started)


def _chunk_call(chunk: _Chunk) -> _Answer:
    """The API call for the claimed rows, and what its answer means for each. No database:
    batch_send_chain runs it in a thread of its own."""
    sends, mode = chunk.sends, chunk.batch.mode
    failure = None
    call_started = time.perf_counter()
    try:
        if len(sends) == 1:
            # The single call, so that the link modes get their URL for a one-off reward.
            s = sends[0]
            created = chunk.client.create_reward(mode=mode, recipient=s.recipient, name=s.name)
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
            result = chunk.client.create_rewards(
                mode=mode,
                recipients=[Recipient(address=s.recipient, name=s.name) for s in sends],
            )
            outcomes = _outcomes_for_multi(sends, result, mode=mode, now=timezone.now())
    except MokugiftError as error:
        outcomes = _outcomes_for_error(sends, error, now=timezone.now())
        failure = error
    return _Answer(outcomes, failure, time.perf_counter() - call_started, timezone.now())


def _answer_is_plain(chunk: _Chunk, answer: _Answer) -> bool:
    """An answer that, once written, asks nothing of the chain: no error for the call, each row
    sent or refused for good, and the campaign was not backed off (its clearing is news)."""
    return (
        answer.failure is None
        and (chunk.backoff is None or not chunk.backoff.failures)
        and all(o.state in (Send.State.SENT, Send.State.FAILED) for o in answer.outcomes)
    )


def _chunk_record(chunk: _Chunk, answer: _Answer) -> bool:
    """Write the answer, and do what it asks: back the campaign off, pause the batch for its
    coins, reconcile rows of unknown outcome, wake the chains a backoff had stopped. True: the
    chain may go on."""
    batch_id, batch, backoff = chunk.batch.pk, chunk.batch, chunk.backoff
    claimed_at = chunk.sends[0].attempt_started_at
    assert claimed_at is not None  # the claim set it
    failure = answer.failure
    written = _record(answer.outcomes, claimed_at=claimed_at, now=answer.at)
    states: dict[str, int] = {}
    for o in written:
        states[o.state] = states.get(o.state, 0) + 1
    logger.info(
        "batch %s: chunk of %d rows in %.3f s, the call %.3f s: %s",
        batch_id,
        len(chunk.sends),
        time.perf_counter() - chunk.started,
        answer.call_seconds,
        states,
    )

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
        return False
    if states.get(Send.State.UNKNOWN):
        # Soon after, not only on the sweep's beat: a bulk send with faults should not wait.
        reconcile_enqueue(
            campaign_pk=batch.campaign_id, countdown=settings.MOKUGIFT_RECONCILE_SETTLE
        )
    if backed_off:
        # No successor: the end of the backoff brings a chain back (campaign_sending_resume).
        batch_finish_if_done(batch_id=batch_id)
        return False
    if answered_again:
        # Every batch of the campaign gets back the chains the backoff had stopped; this
        # chain's place is among them.
        for other in Batch.objects.filter(
            campaign_id=batch.campaign_id, state=Batch.State.SENDING
        ).values_list("pk", flat=True):
            batch_wake(batch_id=other)
        return False
    return True


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
