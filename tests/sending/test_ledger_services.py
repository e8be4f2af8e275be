"""The ledger's services without the network: batches, claims, cancel, retry, sweep, progress."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from campaigns.services import campaign_create
from rewards.models import Batch, Send, SendEvent
from rewards.selectors.sending import batch_counts, batch_progress
from rewards.services.chunk import sends_claim
from rewards.services.reconcile import months_between
from rewards.services.sending import (
    RecipientRow,
    api_error_words,
    batch_cancel,
    batch_create,
    batch_finish_if_done,
    batch_resume,
    batch_retry_failed,
    outcome_unknown_words,
    retry_delay,
)
from rewards.services.sweep import sends_stuck_to_unknown


@pytest.fixture
def campaign(db):
    return campaign_create(
        actor=None, name="Spring", campaign_id="spring-1", environment="sandbox", passcode="p-1"
    )


def rows(n: int, *, start: int = 2) -> list[RecipientRow]:
    return [
        RecipientRow(row_number=start + i, recipient=f"r{i}@example.com", name=f"R {i}")
        for i in range(n)
    ]


def make(campaign, n: int = 3, **kw) -> Batch:
    kw.setdefault("source", Batch.Source.CSV)
    return batch_create(campaign=campaign, mode="email", rows=rows(n), **kw)


def test_batch_create_writes_one_waiting_row_per_recipient(campaign, marketer):
    batch = make(campaign, 5, created_by=marketer)
    assert batch.state == Batch.State.SENDING
    assert list(batch.sends.values_list("row_number", "recipient", "state"))[:2] == [
        (2, "r0@example.com", "waiting"),
        (3, "r1@example.com", "waiting"),
    ]
    assert batch_counts(batch=batch)["waiting"] == 5


def test_batch_create_keeps_every_character_of_a_recipient_and_a_name(campaign):
    # On PostgreSQL the rows go in by COPY of text made by us: the characters that end a
    # field or a row there, the backslash, and COPY's NULL marker must come back as they went.
    names = ["a\tb", "line\nbreak", "cr\rx", "back\\slash", "\\N", "", "trail\\", "Zoë 名前"]
    batch = batch_create(
        campaign=campaign,
        mode="link-id",
        rows=[
            RecipientRow(row_number=i + 2, recipient=f"id\\{i}\t", name=name)
            for i, name in enumerate(names)
        ],
        source=Batch.Source.API,
    )
    kept = list(batch.sends.order_by("row_number").values_list("recipient", "name", "state"))
    assert kept == [(f"id\\{i}\t", name, "waiting") for i, name in enumerate(names)]
    row = batch.sends.get(row_number=2)
    assert (row.attempts, row.remote_id, row.error_code, row.sent_at) == (0, "", None, None)
    assert row.link_not_recovered is False and row.updated_at is not None


def test_batch_create_enqueues_only_after_commit(campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        make(campaign, 600)
    # 600 rows at 250 a chunk: three chains, each enqueued when the transaction commits.
    assert len(callbacks) == 3


def test_a_repeated_idempotency_key_returns_the_first_batch(campaign):
    first = make(campaign, 3, idempotency_key="k-1")
    second = make(campaign, 3, idempotency_key="k-1")
    assert first.pk == second.pk
    assert Send.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_submits_with_one_key_make_one_batch():
    campaign = campaign_create(
        actor=None, name="C", campaign_id="c-race", environment="sandbox", passcode="p"
    )
    barrier = threading.Barrier(2)
    made: list[int] = []

    def submit():
        try:
            barrier.wait()
            made.append(make(campaign, 50, idempotency_key="same-form").pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 2 and made[0] == made[1]
    assert Batch.objects.count() == 1
    assert Send.objects.count() == 50


def test_a_batch_without_rows_or_on_a_disabled_campaign_is_refused(campaign):
    with pytest.raises(ValidationError):
        batch_create(campaign=campaign, mode="email", rows=[], source="csv")
    campaign.enabled = False
    campaign.save()
    with pytest.raises(ValidationError):
        make(campaign, 1)


def test_fifty_thousand_rows_are_written_in_one_call(campaign):
    batch = make(campaign, 50_000)
    assert batch.sends.count() == 50_000


def test_a_claim_moves_due_waiting_rows_to_sending_and_counts_the_attempt(campaign):
    batch = make(campaign, 5)
    Send.objects.filter(batch=batch, row_number=2).update(
        next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    claimed = sends_claim(batch_id=batch.pk, limit=3)
    assert [s.row_number for s in Send.objects.filter(pk__in=[c.pk for c in claimed])] == [
        3,
        4,
        5,
    ]
    for send in Send.objects.filter(pk__in=[c.pk for c in claimed]):
        assert send.state == "sending" and send.attempts == 1
        assert send.first_attempt_at == send.attempt_started_at
    assert SendEvent.objects.filter(to_state="sending").count() == 3
    # The row not due yet and the one left: a second claim takes only the one left.
    assert [s.row_number for s in sends_claim(batch_id=batch.pk, limit=10)] == [6]
    assert sends_claim(batch_id=batch.pk, limit=10) == []


def test_a_claim_takes_a_recipient_once_per_call(campaign):
    batch = batch_create(
        campaign=campaign,
        mode="email",
        source="csv",
        rows=[
            RecipientRow(row_number=2, recipient="sally@example.com"),
            RecipientRow(row_number=3, recipient="SALLY@example.com"),
            RecipientRow(row_number=4, recipient="bob@example.com"),
        ],
    )
    assert [s.row_number for s in sends_claim(batch_id=batch.pk, limit=10)] == [2, 4]
    assert [s.row_number for s in sends_claim(batch_id=batch.pk, limit=10)] == [3]


def test_a_paused_or_cancelled_batch_is_not_claimed(campaign):
    batch = make(campaign, 2)
    Batch.objects.filter(pk=batch.pk).update(state=Batch.State.PAUSED)
    assert sends_claim(batch_id=batch.pk, limit=10) == []
    Batch.objects.filter(pk=batch.pk).update(state=Batch.State.CANCELLED)
    assert sends_claim(batch_id=batch.pk, limit=10) == []


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claims_never_take_the_same_row():
    campaign = campaign_create(
        actor=None, name="C", campaign_id="c-claims", environment="sandbox", passcode="p"
    )
    batch = make(campaign, 400)
    barrier = threading.Barrier(4)
    taken: list[list[int]] = [[] for _ in range(4)]

    def worker(i):
        try:
            barrier.wait()
            while claimed := sends_claim(batch_id=batch.pk, limit=25):
                taken[i].extend(s.pk for s in claimed)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [pk for t in taken for pk in t]
    assert len(every) == len(set(every)) == 400
    assert set(Send.objects.values_list("attempts", flat=True)) == {1}


def test_cancel_stops_rows_not_yet_claimed_and_leaves_claimed_ones(campaign, marketer):
    batch = make(campaign, 4, created_by=marketer)
    claimed = sends_claim(batch_id=batch.pk, limit=1)
    assert batch_cancel(batch=batch, actor=marketer) == 3
    counts = batch_counts(batch=batch)
    assert counts["cancelled"] == 3 and counts["sending"] == 1
    assert batch.state == Batch.State.CANCELLED
    assert sends_claim(batch_id=batch.pk, limit=10) == []
    assert Send.objects.get(pk=claimed[0].pk).state == "sending"


def test_retry_failed_puts_back_only_the_failed_rows(campaign, django_capture_on_commit_callbacks):
    batch = make(campaign, 3)
    Send.objects.filter(batch=batch, row_number=2).update(
        state="failed", error_code=112, error_message="bad", attempts=1
    )
    Send.objects.filter(batch=batch, row_number=3).update(state="sent", remote_id="R1")
    Send.objects.filter(batch=batch, row_number=4).update(state="cancelled")
    batch_finish_if_done(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert batch_retry_failed(batch=batch) == 1
    again = Send.objects.get(batch=batch, row_number=2)
    assert (again.state, again.attempts, again.error_code, again.error_message) == (
        "waiting",
        0,
        None,
        "",
    )
    assert batch.state == Batch.State.SENDING and batch.finished_at is None
    assert len(callbacks) == 1
    assert Send.objects.get(batch=batch, row_number=3).state == "sent"


def test_retry_failed_leaves_a_cancelled_batch_alone(campaign, django_capture_on_commit_callbacks):
    batch = make(campaign, 2)
    Send.objects.filter(batch=batch, row_number=2).update(state="failed", error_code=112)
    batch_cancel(batch=batch)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert batch_retry_failed(batch=batch) == 0
    assert Send.objects.get(batch=batch, row_number=2).state == "failed"
    assert batch.state == Batch.State.CANCELLED and callbacks == []


def test_resume_restarts_only_a_paused_batch(campaign, django_capture_on_commit_callbacks):
    batch = make(campaign, 2)
    assert batch_resume(batch=batch) is False
    Batch.objects.filter(pk=batch.pk).update(state=Batch.State.PAUSED, paused_reason="105")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert batch_resume(batch=batch) is True
    assert batch.state == Batch.State.SENDING and batch.paused_reason == ""
    assert len(callbacks) == 1


def test_the_sweep_moves_rows_stuck_in_sending_to_unknown(campaign, settings):
    settings.MOKUGIFT_CALL_DEADLINE = 60
    settings.MOKUGIFT_SWEEP_MARGIN = 30
    batch = make(campaign, 2)
    old, fresh = sends_claim(batch_id=batch.pk, limit=2)
    Send.objects.filter(pk=old.pk).update(attempt_started_at=timezone.now() - timedelta(seconds=96))
    assert sends_stuck_to_unknown() == [old.pk]
    assert Send.objects.get(pk=old.pk).state == "unknown"
    assert Send.objects.get(pk=fresh.pk).state == "sending"
    assert SendEvent.objects.filter(send_id=old.pk, to_state="unknown").exists()


def test_progress_counts_every_state_and_estimates_the_time_left(campaign):
    batch = make(campaign, 10)
    assert batch_progress(batch=batch).eta_seconds is None
    start = timezone.now() - timedelta(seconds=10)
    Send.objects.filter(batch=batch).update(first_attempt_at=start)
    Send.objects.filter(batch=batch, row_number__lte=5).update(state="sent")
    Send.objects.filter(batch=batch, row_number=6).update(state="failed")
    progress = batch_progress(batch=batch, now=start + timedelta(seconds=10))
    assert progress.counts["sent"] == 4 and progress.counts["failed"] == 1
    assert progress.total == 10 and progress.finished == 5 and progress.percent == 50
    # 5 rows in 10 s: the 5 left take about 10 s more.
    assert progress.eta_seconds == pytest.approx(10, rel=0.01)


def test_batch_counts_is_one_query(campaign, django_assert_num_queries):
    batch = make(campaign, 10)
    with django_assert_num_queries(1):
        counts = batch_counts(batch=batch)
    assert counts == {
        "waiting": 10,
        "sending": 0,
        "sent": 0,
        "failed": 0,
        "unknown": 0,
        "cancelled": 0,
    }


def test_retries_back_off_with_jitter_up_to_a_cap(settings):
    settings.MOKUGIFT_RETRY_BACKOFF, settings.MOKUGIFT_RETRY_BACKOFF_MAX = 2.0, 300.0
    assert 1.0 <= retry_delay(attempts=1) <= 3.0
    assert 4.0 <= retry_delay(attempts=3) <= 12.0
    assert retry_delay(attempts=30) <= 450.0
    assert len({round(retry_delay(attempts=2), 6) for _ in range(20)}) > 1


def test_mokugift_errors_are_said_in_plain_words():
    words = api_error_words(code=102, description="Incorrect Passcode")
    assert "passcode" in words and "102" in words


def test_a_mokugift_error_says_each_thing_once():
    # Not "The campaign is disabled at Mokugift. (Mokugift error 103: Campaign disabled)".
    assert api_error_words(code=103, description="Campaign disabled") == (
        "Campaign disabled (Mokugift error 103)"
    )
    assert api_error_words(code=105, description="Lack of moku-coins") == (
        "No moku-coins left (Mokugift error 105)"
    )
    # A row of unknown outcome says so once, whatever the client's message said.
    said = "Mokugift reward_url/c-1: read timeout (outcome unknown)"
    assert outcome_unknown_words(said=said) == (
        "Outcome unknown: Mokugift reward_url/c-1: read timeout; checking with Mokugift."
    )
    # A code outside the document's table: Mokugift's own words, then the code.
    assert api_error_words(code=199, description="Something new") == (
        "Something new (Mokugift error 199)"
    )


def test_reconciliation_reads_every_month_of_the_window_across_a_year_end():
    start = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert months_between(start, start + timedelta(minutes=1)) == [(2026, 12), (2027, 1)]
    assert months_between(start, start) == [(2026, 12)]


def test_an_answer_that_comes_after_the_sweep_gave_up_is_not_written(campaign):
    from rewards.services.chunk import Outcome, _record

    batch = make(campaign, 2)
    claimed = sends_claim(batch_id=batch.pk, limit=2)
    claimed_at = claimed[0].attempt_started_at
    late, on_time = claimed
    Send.objects.filter(pk=late.pk).update(attempt_started_at=claimed_at - timedelta(hours=1))
    sends_stuck_to_unknown()
    assert Send.objects.get(pk=late.pk).state == "unknown"
    Send.objects.filter(pk=late.pk).update(attempt_started_at=claimed_at)
    written = _record(
        [
            Outcome(late, Send.State.SENT, remote_id="R-late"),
            Outcome(on_time, Send.State.SENT, remote_id="R-on-time"),
        ],
        claimed_at=claimed_at,
        now=timezone.now(),
    )
    assert [o.send.pk for o in written] == [on_time.pk]
    # The row is reconciliation's now: it finds R-late by itself, never twice.
    assert Send.objects.get(pk=late.pk).state == "unknown"
    assert Send.objects.get(pk=on_time.pk).remote_id == "R-on-time"
    assert SendEvent.objects.filter(send_id=on_time.pk, to_state="sent").count() == 1
    assert not SendEvent.objects.filter(send_id=late.pk, to_state="sent").exists()


def test_the_sweep_restarts_a_batch_whose_tasks_were_lost(
    campaign, django_capture_on_commit_callbacks
):
    from rewards.services.sweep import sends_sweep

    batch = make(campaign, 3)
    # Nothing in flight, rows due: the tasks of this batch died with a worker.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = sends_sweep()
    assert report.kicked_batches == 1 and len(callbacks) == 1
    sends_claim(batch_id=batch.pk, limit=1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = sends_sweep()
    # A row in flight: its chain is alive, the sweep leaves the batch alone.
    assert report.kicked_batches == 0 and callbacks == []


def test_a_batch_with_nothing_left_to_move_is_finished_by_the_sweep(campaign):
    from rewards.services.sweep import sends_sweep

    batch = make(campaign, 2)
    Send.objects.filter(batch=batch).update(state="sent")
    assert sends_sweep().finished_batches == 1
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE and batch.finished_at is not None


def test_tasks_for_rows_that_are_gone_return_quietly(db):
    from rewards.tasks.sending import batch_send_chunk, campaign_reconcile, sends_sweep

    assert batch_send_chunk(987654) is None
    assert campaign_reconcile(987654) is None
    assert sends_sweep() is None


# Outside a test's transaction, as a worker writes it: on PostgreSQL with none of its own.
@pytest.mark.django_db(transaction=True)
def test_an_answer_is_written_exactly_whatever_its_values_hold(campaign):
    """Every value of an answer reaches its row and its history as it was: quotes,
    backslashes, line breaks, tabs, non-ASCII, what looks like JSON or SQL, an empty string,
    a missing error code and one, a retry time to the microsecond."""
    from rewards.services.chunk import Outcome, _record

    batch = make(campaign, 3)
    sent, refused, again = sends_claim(batch_id=batch.pk, limit=3)
    claimed_at = sent.attempt_started_at
    now = timezone.now()
    later = datetime(2027, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    hostile = 'a "quote", a \\ backslash, a\nline, a\ttab, é, 木, 🌳, "}], ]; DROP TABLE x; --'
    written = _record(
        [
            Outcome(
                sent,
                Send.State.SENT,
                remote_id='R-"1"\\',
                url="https://mokugift.example/r/1?a=é&b=\"'",
                transaction_id="tx 木",
            ),
            Outcome(
                refused,
                Send.State.FAILED,
                note=hostile,
                error_code=102,
                error_message=hostile,
            ),
            Outcome(again, Send.State.WAITING, next_attempt_at=later, attempts=0),
        ],
        claimed_at=claimed_at,
        now=now,
    )
    assert len(written) == 3
    first, second, third = (Send.objects.get(pk=s.pk) for s in (sent, refused, again))
    assert (first.state, first.remote_id, first.url, first.transaction_id) == (
        "sent",
        'R-"1"\\',
        "https://mokugift.example/r/1?a=é&b=\"'",
        "tx 木",
    )
    assert first.sent_at == now and first.error_code is None and first.error_message == ""
    assert (second.state, second.error_code, second.error_message, second.sent_at) == (
        "failed",
        102,
        hostile,
        None,
    )
    assert (third.state, third.next_attempt_at, third.attempts) == ("waiting", later, 0)
    notes = dict(SendEvent.objects.filter(from_state="sending").values_list("send_id", "note"))
    assert notes == {sent.pk: 'R-"1"\\', refused.pk: hostile, again.pk: ""}


def test_a_deleted_batch_takes_its_rows_and_their_history(campaign):
    """SendEvent has no foreign key in the database (its writes are checked by construction):
    the ORM still deletes a row's history with it."""
    batch = make(campaign, 2)
    other = make(campaign, 1)
    sends_claim(batch_id=batch.pk, limit=2)
    sends_claim(batch_id=other.pk, limit=1)
    assert SendEvent.objects.count() == 3
    batch.delete()
    assert not Send.objects.filter(batch_id=batch.pk).exists()
    assert list(SendEvent.objects.values_list("send__batch_id", flat=True)) == [other.pk]


def test_a_stale_task_of_a_finished_batch_whose_passcode_is_unreadable_says_nothing(
    campaign, settings, caplog
):
    """The passcode is read with the batch, before its state: a task of a cancelled batch
    whose passcode no key reads ends quietly, without saying it paused anything (found in
    review)."""
    import logging

    from cryptography.fernet import Fernet

    from rewards.services.chunk import batch_send_chunk

    batch = make(campaign, 2)
    Batch.objects.filter(pk=batch.pk).update(state=Batch.State.CANCELLED)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with caplog.at_level(logging.WARNING, logger="rewards.services.sending"):
        assert batch_send_chunk(batch_id=batch.pk) is False
    batch.refresh_from_db()
    assert batch.state == Batch.State.CANCELLED
    assert [r.getMessage() for r in caplog.records if "paused" in r.getMessage()] == []
