"""One chunk at a time, in this process, against the sandbox over real HTTP.

The task bodies are called directly here (the worker tests run them in a real worker): each
test drives `batch_send_chunk` and `campaign_reconcile` until nothing is left to claim.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from rewards.models import Batch, Send, SendEvent
from rewards.selectors.sending import batch_counts
from rewards.services.chunk import batch_send_chunk, sends_claim
from rewards.services.reconcile import campaign_reconcile
from rewards.services.sending import (
    PAUSED_FOR_COINS,
    RecipientRow,
    batch_cancel,
    batch_create,
    batch_resume,
)
from sandbox.models import SandboxReward
from sandbox.services import sandbox_campaign_save

PASSCODE = "chunk-Passc0de-secret"


@pytest.fixture
def fast(settings):
    settings.MOKUGIFT_CHUNK_SIZE = 4
    settings.MOKUGIFT_RECONCILE_SETTLE = 0
    settings.MOKUGIFT_COMMIT_HORIZON = 0
    settings.MOKUGIFT_RETRY_BACKOFF = 0
    settings.MOKUGIFT_CAMPAIGN_BACKOFF = 0  # a fault backs the campaign off for no time
    settings.MOKUGIFT_CLOCK_SKEW = 2
    return settings


def send_all(batch: Batch, *, rounds: int = 50) -> None:
    """What the chains of tasks would do: chunks until none is left, reconciling between."""
    for _ in range(rounds):
        batch_send_chunk(batch_id=batch.pk)
        campaign_reconcile(campaign_pk=batch.campaign_id)
        batch.refresh_from_db()
        if not Send.objects.filter(batch=batch, state__in=["waiting", "unknown"]).exists():
            return


def recipients(n: int) -> list[RecipientRow]:
    return [RecipientRow(row_number=i + 2, recipient=f"p{i}@example.com") for i in range(n)]


def rewards_per_recipient(campaign_id: str) -> Counter:
    return Counter(
        SandboxReward.objects.filter(campaign__campaign_id=campaign_id).values_list(
            "recipient_email", flat=True
        )
    )


def test_a_bulk_batch_is_sent_in_chunks_with_the_multi_call(sandbox, fast, isolated_broker):
    campaign = sandbox.campaign(campaign_id="bulk-1", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(10), source="csv")
    send_all(batch)
    assert batch_counts(batch=batch)["sent"] == 10
    assert batch.state == Batch.State.DONE and batch.finished_at is not None
    assert rewards_per_recipient("bulk-1") == {f"p{i}@example.com": 1 for i in range(10)}
    # Three calls: 4 + 4 + 2 rows, each with its own transaction ID.
    assert Send.objects.filter(batch=batch).values("transaction_id").distinct().count() == 3
    made = dict(SandboxReward.objects.values_list("recipient_email", "remote_id"))
    for send in Send.objects.filter(batch=batch):
        assert send.remote_id == made[send.recipient] and send.sent_at is not None
    assert SendEvent.objects.filter(send__batch=batch, to_state="sent").count() == 10


@pytest.mark.parametrize("mode", ["link", "link-id"])
def test_one_reward_in_a_link_mode_gets_its_url(sandbox, fast, isolated_broker, mode):
    campaign = sandbox.campaign(campaign_id="one-1", passcode=PASSCODE)
    recipient = "sally@example.com" if mode == "link" else "user-6789"
    batch = batch_create(
        campaign=campaign,
        mode=mode,
        rows=[RecipientRow(row_number=1, recipient=recipient, name="Sally Chan")],
        source="single",
    )
    send_all(batch)
    send = batch.sends.get()
    reward = SandboxReward.objects.get()
    assert (send.state, send.remote_id, send.url) == ("sent", reward.remote_id, reward.url)
    assert reward.name == "Sally Chan"


def test_part_failed_rows_are_recorded_one_by_one(sandbox, fast, isolated_broker):
    campaign = sandbox.campaign(campaign_id="part-1", passcode=PASSCODE)
    rows = [
        RecipientRow(row_number=2, recipient="good@example.com"),
        RecipientRow(row_number=3, recipient="not-an-email"),
        RecipientRow(row_number=4, recipient="also-good@example.com"),
    ]
    batch = batch_create(campaign=campaign, mode="email", rows=rows, source="csv")
    send_all(batch)
    by_row = {s.row_number: s for s in batch.sends.all()}
    assert by_row[2].state == by_row[4].state == "sent"
    assert by_row[3].state == "failed" and by_row[3].error_code == 112
    # Said once, with its code once (not "... not valid. (Mokugift error 112: Invalid email)").
    assert by_row[3].error_message == "Email address not valid (Mokugift error 112)"
    assert batch.state == Batch.State.DONE


def test_a_wrong_passcode_fails_the_rows_with_the_message(sandbox, fast, isolated_broker):
    campaign = sandbox.campaign(campaign_id="wrong-1", passcode=PASSCODE)
    sandbox_campaign_save(campaign_id="wrong-1", passcode="another-one")
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(3), source="csv")
    send_all(batch)
    for send in batch.sends.all():
        assert send.state == "failed" and send.error_code == 102
        assert "passcode" in send.error_message and PASSCODE not in send.error_message
    assert SandboxReward.objects.count() == 0


@pytest.mark.parametrize(
    ("sandbox_fields", "code", "words"),
    [
        ({"enabled": False}, 103, "disabled"),
        ({"expires": "2020-01-01"}, 104, "expired"),
    ],
)
def test_a_campaign_mokugift_refuses_fails_the_rows_without_retrying(
    sandbox, fast, isolated_broker, sandbox_fields, code, words
):
    campaign = sandbox.campaign(campaign_id="refuse-1", passcode=PASSCODE, **sandbox_fields)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(3), source="csv")
    batch_send_chunk(batch_id=batch.pk)
    for send in batch.sends.all():
        assert (send.state, send.error_code, send.attempts) == ("failed", code, 1)
        assert words in send.error_message
        assert send.error_message.count(str(code)) == 1, send.error_message
    assert SandboxReward.objects.count() == 0


def test_a_call_that_never_reached_mokugift_is_retried_later_and_sends_once(
    sandbox, fast, isolated_broker, settings
):
    campaign = sandbox.campaign(campaign_id="refused-1", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(3), source="csv")
    reachable = settings.MOKUGIFT_SANDBOX_URL
    settings.MOKUGIFT_SANDBOX_URL = "http://127.0.0.1:9/sandbox/api/"  # nothing listens there
    settings.MOKUGIFT_RETRY_BACKOFF = 30
    before = timezone.now()
    batch_send_chunk(batch_id=batch.pk)
    for send in batch.sends.all():
        assert (send.state, send.attempts) == ("waiting", 1)
        # Backoff with jitter: 15 to 45 s after the first attempt.
        assert before + timedelta(seconds=14) < send.next_attempt_at
        assert send.next_attempt_at < timezone.now() + timedelta(seconds=46)
        assert "Could not reach Mokugift" in send.error_message
    assert sends_claim(batch_id=batch.pk, limit=10) == []  # not before it is due

    settings.MOKUGIFT_SANDBOX_URL = reachable
    Send.objects.filter(batch=batch).update(next_attempt_at=None)  # the wait is over
    send_all(batch)
    assert batch_counts(batch=batch)["sent"] == 3
    assert set(rewards_per_recipient("refused-1").values()) == {1}


def test_a_call_that_never_reaches_mokugift_is_given_up_after_the_last_attempt(
    sandbox, fast, isolated_broker, settings
):
    campaign = sandbox.campaign(campaign_id="refused-2", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(2), source="csv")
    settings.MOKUGIFT_SANDBOX_URL = "http://127.0.0.1:9/sandbox/api/"
    settings.MOKUGIFT_MAX_ATTEMPTS = 2
    send_all(batch, rounds=5)
    for send in batch.sends.all():
        assert (send.state, send.attempts) == ("failed", 2)
        assert send.error_message.startswith("Gave up after 2 attempts. Could not reach Mokugift")
    assert batch.state == Batch.State.DONE


def test_no_coins_pauses_the_batch_and_resume_finishes_it(sandbox, fast, isolated_broker):
    campaign = sandbox.campaign(campaign_id="coins-1", passcode=PASSCODE, coins=6)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(10), source="csv")
    send_all(batch)
    assert batch.state == Batch.State.PAUSED and batch.paused_reason == PAUSED_FOR_COINS
    counts = batch_counts(batch=batch)
    assert counts["sent"] == 6 and counts["waiting"] == 4
    # Nothing moves while paused.
    batch_send_chunk(batch_id=batch.pk)
    assert batch_counts(batch=batch)["waiting"] == 4

    sandbox_campaign_save(campaign_id="coins-1", coins=100)
    assert batch_resume(batch=batch) is True
    send_all(batch)
    assert batch_counts(batch=batch)["sent"] == 10 and batch.state == Batch.State.DONE
    assert set(rewards_per_recipient("coins-1").values()) == {1}
    assert len(rewards_per_recipient("coins-1")) == 10


def test_a_passcode_no_key_can_read_pauses_the_batch_and_claims_nothing(
    sandbox, fast, isolated_broker, settings
):
    campaign = sandbox.campaign(campaign_id="key-1", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(6), source="csv")
    kept_keys = settings.FIELD_ENCRYPTION_KEYS
    # The key the passcode was stored under was dropped from the settings.
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    batch_send_chunk(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.state == Batch.State.PAUSED
    assert "FIELD_ENCRYPTION_KEYS" in batch.paused_reason
    # Nothing was claimed, so nothing waits for the sweep as "outcome unknown".
    assert batch_counts(batch=batch)["waiting"] == 6
    assert SandboxReward.objects.count() == 0

    settings.FIELD_ENCRYPTION_KEYS = kept_keys
    assert batch_resume(batch=batch) is True
    send_all(batch)
    assert batch_counts(batch=batch)["sent"] == 6 and batch.state == Batch.State.DONE


@pytest.mark.parametrize("mode", ["email", "link"])
def test_a_reward_made_before_the_connection_dropped_is_found_not_sent_again(
    sandbox, fast, isolated_broker, mode
):
    campaign = sandbox.campaign(
        campaign_id="drop-1", passcode=PASSCODE, fault="drop-after", fault_rate=1.0
    )
    batch = batch_create(campaign=campaign, mode=mode, rows=recipients(6), source="csv")
    batch_send_chunk(batch_id=batch.pk)
    assert batch_counts(batch=batch)["unknown"] == 4
    assert SandboxReward.objects.count() == 4
    campaign_reconcile(campaign_pk=campaign.pk)
    found = Send.objects.filter(batch=batch, state="sent")
    assert found.count() == 4
    made = dict(SandboxReward.objects.values_list("recipient_email", "remote_id"))
    for send in found:
        assert send.remote_id == made[send.recipient]
        assert send.link_not_recovered is (mode == "link") and send.url == ""
    sandbox_campaign_save(campaign_id="drop-1", fault="none")
    send_all(batch)
    assert batch_counts(batch=batch)["sent"] == 6
    assert set(rewards_per_recipient("drop-1").values()) == {1}


def test_unknown_rows_stay_unknown_while_no_key_reads_the_passcode(
    sandbox, fast, isolated_broker, settings
):
    campaign = sandbox.campaign(
        campaign_id="key-2", passcode=PASSCODE, fault="drop-after", fault_rate=1.0
    )
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(3), source="csv")
    batch_send_chunk(batch_id=batch.pk)
    kept_keys = settings.FIELD_ENCRYPTION_KEYS
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    report = campaign_reconcile(campaign_pk=campaign.pk)
    assert "FIELD_ENCRYPTION_KEYS" in report.error and report.pending == 3
    assert batch_counts(batch=batch)["unknown"] == 3

    settings.FIELD_ENCRYPTION_KEYS = kept_keys
    campaign_reconcile(campaign_pk=campaign.pk)
    assert batch_counts(batch=batch)["sent"] == 3


def test_a_call_dropped_before_the_reward_goes_back_to_waiting(sandbox, fast, isolated_broker):
    campaign = sandbox.campaign(
        campaign_id="before-1", passcode=PASSCODE, fault="drop-before", fault_rate=1.0
    )
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(3), source="csv")
    batch_send_chunk(batch_id=batch.pk)
    assert batch_counts(batch=batch)["unknown"] == 3
    campaign_reconcile(campaign_pk=campaign.pk)
    assert batch_counts(batch=batch)["waiting"] == 3
    assert SandboxReward.objects.count() == 0
    sandbox_campaign_save(campaign_id="before-1", fault="none")
    send_all(batch)
    assert set(rewards_per_recipient("before-1").values()) == {1}
    assert batch_counts(batch=batch)["sent"] == 3


def test_a_reward_sent_earlier_to_the_same_recipient_is_not_taken_for_this_one(
    sandbox, fast, isolated_broker
):
    campaign = sandbox.campaign(campaign_id="earlier-1", passcode=PASSCODE)
    first = batch_create(campaign=campaign, mode="email", rows=recipients(1), source="single")
    send_all(first)
    assert first.sends.get().state == "sent"
    sandbox_campaign_save(campaign_id="earlier-1", fault="drop-before", fault_rate=1.0)
    second = batch_create(campaign=campaign, mode="email", rows=recipients(1), source="single")
    batch_send_chunk(batch_id=second.pk)
    campaign_reconcile(campaign_pk=campaign.pk)
    # The reward of the first batch is in the window but claimed: this row is absent.
    assert second.sends.get().state == "waiting"


def test_the_passcode_never_reaches_a_log_line(sandbox, fast, isolated_broker, caplog):
    caplog.set_level(logging.DEBUG)
    campaign = sandbox.campaign(
        campaign_id="logs-1", passcode=PASSCODE, fault="drop-after", fault_rate=0.5
    )
    batch = batch_create(campaign=campaign, mode="link", rows=recipients(9), source="csv")
    send_all(batch)
    sandbox_campaign_save(campaign_id="logs-1", passcode="not-it")
    batch2 = batch_create(campaign=campaign, mode="link", rows=recipients(2), source="csv")
    send_all(batch2)
    assert caplog.records, "the send logged nothing at DEBUG"
    assert PASSCODE not in caplog.text
    for send in Send.objects.all():
        assert PASSCODE not in send.error_message
    for event in SendEvent.objects.all():
        assert PASSCODE not in event.note


def test_unknown_rows_of_a_cancelled_batch_end_sent_or_cancelled(sandbox, fast, isolated_broker):
    campaign = sandbox.campaign(
        campaign_id="cancel-1", passcode=PASSCODE, fault="drop-before", fault_rate=1.0
    )
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(6), source="csv")
    batch_send_chunk(batch_id=batch.pk)
    assert batch_cancel(batch=batch) == 2
    assert batch_counts(batch=batch)["unknown"] == 4
    campaign_reconcile(campaign_pk=campaign.pk)
    batch.refresh_from_db()
    assert batch_counts(batch=batch)["cancelled"] == 6
    assert batch.state == Batch.State.CANCELLED and batch.finished_at is not None


@pytest.fixture
def published(monkeypatch):
    """The tasks published (name, args), recorded on their way to the (isolated) broker."""
    from rewards.services import enqueue

    seen: list[tuple[str, list]] = []
    publish = enqueue.task_publish

    def recording(task, *, args, countdown=None):
        seen.append((task.name, list(args)))
        publish(task, args=args, countdown=countdown)

    monkeypatch.setattr(enqueue, "task_publish", recording)
    return seen


def test_one_task_sends_chunk_after_chunk_without_a_trip_through_the_broker(
    sandbox, fast, isolated_broker, published, monkeypatch
):
    from rewards.services import chunk
    from rewards.tasks.sending import batch_send_chunk as task

    # Time enough for three calls on a loaded machine: the hand-over is the next test's.
    monkeypatch.setattr(chunk, "CHAIN_SECONDS", 60.0)

    campaign = sandbox.campaign(campaign_id="chain-1", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(10), source="csv")
    published.clear()  # the batch's own start
    task(batch.pk)
    # 4 + 4 + 2 rows, three calls, in this one task: no successor went through the broker.
    assert batch_counts(batch=batch)["sent"] == 10
    assert Send.objects.filter(batch=batch).values("transaction_id").distinct().count() == 3
    assert rewards_per_recipient("chain-1") == {f"p{i}@example.com": 1 for i in range(10)}
    assert ("rewards.batch_send_chunk", [batch.pk]) not in published
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE


def test_a_chain_hands_over_to_a_successor_task_when_its_time_is_up(
    sandbox, fast, isolated_broker, published
):
    from rewards.services.chunk import batch_send_chain

    campaign = sandbox.campaign(campaign_id="chain-2", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(10), source="csv")
    published.clear()
    batch_send_chain(batch_id=batch.pk, seconds=0)
    # One chunk, then the rest is a successor's, at the back of the queue.
    assert batch_counts(batch=batch)["sent"] == 4
    assert published == [("rewards.batch_send_chunk", [batch.pk])]


def second_claim_does(monkeypatch, batch: Batch, instead) -> list[int]:
    """The chain's claims patched: each notes how many rows of the batch are *sending* (in the
    list returned), and the second is `instead(claim, batch_id=...)`, given the real claim."""
    from rewards.services import chunk

    real_claim = chunk._chunk_claim
    claims: list[int] = []

    def claim(**kwargs):
        claims.append(Send.objects.filter(batch=batch, state="sending").count())
        if len(claims) == 2:
            return instead(real_claim, **kwargs)
        return real_claim(**kwargs)

    monkeypatch.setattr(chunk, "_chunk_claim", claim)
    return claims


def test_a_chain_in_one_task_stops_at_a_cancel_between_its_chunks(
    sandbox, fast, isolated_broker, published, monkeypatch
):
    from rewards.services import chunk

    campaign = sandbox.campaign(campaign_id="chain-3", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(10), source="csv")

    def cancel_then_claim(claim, **kwargs):
        # The first chunk's answer is in; the marketer cancels before the chain's next claim.
        batch_cancel(batch=Batch.objects.get(pk=batch.pk))
        return claim(**kwargs)

    published.clear()
    claims = second_claim_does(monkeypatch, batch, cancel_then_claim)
    chunk.batch_send_chain(batch_id=batch.pk)
    # The second claim finds the batch cancelled; the first answer written, a third too.
    assert len(claims) == 3
    assert batch_counts(batch=batch)["sent"] == 4
    assert batch_counts(batch=batch)["cancelled"] == 6
    assert len(rewards_per_recipient("chain-3")) == 4
    assert ("rewards.batch_send_chunk", [batch.pk]) not in published


def test_a_chain_writes_a_plain_answer_while_the_next_call_is_out(
    sandbox, fast, isolated_broker, published, monkeypatch
):
    import threading

    from rewards.services import chunk

    monkeypatch.setattr(chunk, "CHAIN_SECONDS", 60.0)
    campaign = sandbox.campaign(campaign_id="chain-4", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(10), source="csv")
    real_call, real_record = chunk._chunk_call, chunk._chunk_record
    calls: list[int] = []
    second_call_out = threading.Event()
    overlapped: list[bool] = []

    def call(one):
        calls.append(len(one.sends))
        if len(calls) == 2:
            second_call_out.set()
        return real_call(one)

    def record(one, answer):
        if not overlapped:
            # The first answer is written while the second call is out: a chain that made
            # the second call only after this write would keep it waiting here in vain.
            overlapped.append(second_call_out.wait(timeout=5))
        return real_record(one, answer)

    monkeypatch.setattr(chunk, "_chunk_call", call)
    monkeypatch.setattr(chunk, "_chunk_record", record)
    published.clear()
    chunk.batch_send_chain(batch_id=batch.pk)
    assert overlapped == [True]
    assert calls == [4, 4, 2]
    # Every answer written, the last before the chain ended: the batch is done.
    assert batch_counts(batch=batch)["sent"] == 10
    assert not Send.objects.filter(batch=batch, state="sending").exists()
    assert rewards_per_recipient("chain-4") == {f"p{i}@example.com": 1 for i in range(10)}
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE
    events = SendEvent.objects.filter(send__batch=batch)
    assert events.filter(from_state="sending", to_state="sent").count() == 10


def test_a_chain_claims_nothing_more_before_it_writes_an_answer_that_pauses(
    sandbox, fast, isolated_broker, monkeypatch
):
    from rewards.services import chunk

    monkeypatch.setattr(chunk, "CHAIN_SECONDS", 60.0)
    # Coins for six: the first call is plain, the second makes two and is refused two (105).
    campaign = sandbox.campaign(campaign_id="chain-5", passcode=PASSCODE, coins=6)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(14), source="csv")
    real_call = chunk._chunk_call
    calls: list[int] = []

    def call(one):
        calls.append(len(one.sends))
        return real_call(one)

    monkeypatch.setattr(chunk, "_chunk_call", call)
    chunk.batch_send_chain(batch_id=batch.pk)
    # The second answer pauses the batch: it was written before any third claim.
    assert calls == [4, 4]
    batch.refresh_from_db()
    assert batch.state == Batch.State.PAUSED and batch.paused_reason == PAUSED_FOR_COINS
    counts = batch_counts(batch=batch)
    assert counts["sent"] == 6 and counts["waiting"] == 8
    assert not Send.objects.filter(batch=batch, state="sending").exists()


def test_a_chain_whose_claim_stops_while_its_own_answer_is_unwritten_writes_it_and_claims_again(
    sandbox, fast, isolated_broker, monkeypatch
):
    from rewards.services import chunk

    monkeypatch.setattr(chunk, "CHAIN_SECONDS", 60.0)
    campaign = sandbox.campaign(campaign_id="chain-6", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(10), source="csv")

    def stop(claim, **kwargs):
        # As a claim stops for a call of the campaign in flight when its backoff ends: here
        # the call in flight is this chain's own, answered and not yet written.
        return None

    claims = second_claim_does(monkeypatch, batch, stop)
    chunk.batch_send_chain(batch_id=batch.pk)
    # The first answer was written, then the claim made again: the chain went on to the end.
    assert claims[:3] == [0, 4, 0]
    assert batch_counts(batch=batch)["sent"] == 10
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE


def test_an_answer_held_by_a_chain_is_written_when_the_next_claim_fails(
    sandbox, fast, isolated_broker, monkeypatch
):
    from rewards.services import chunk

    monkeypatch.setattr(chunk, "CHAIN_SECONDS", 60.0)
    campaign = sandbox.campaign(campaign_id="chain-7", passcode=PASSCODE)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(10), source="csv")

    def fail(claim, **kwargs):
        raise RuntimeError("the database went away for a moment")

    second_claim_does(monkeypatch, batch, fail)
    with pytest.raises(RuntimeError):
        chunk.batch_send_chain(batch_id=batch.pk)
    # The first call's answer is known: written, not left sending for the sweep.
    counts = batch_counts(batch=batch)
    assert counts["sent"] == 4 and counts["waiting"] == 6
    assert not Send.objects.filter(batch=batch, state="sending").exists()
