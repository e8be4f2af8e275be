"""A real Celery worker, Redis (or the filesystem broker), PostgreSQL and the sandbox over HTTP
with faults on: every recipient ends with exactly one reward, every row sent or failed."""

from __future__ import annotations

import logging
from collections import Counter

import pytest

from rewards.models import Batch, Send
from rewards.selectors.sending import batch_counts
from rewards.services.sending import RecipientRow, batch_create, batch_resume
from sandbox.models import SandboxReward
from sandbox.services import sandbox_campaign_save
from tests.worker import wait_for

pytestmark = pytest.mark.worker

PASSCODE = "w0rker-Passcode-do-not-leak"
CHUNK = 4


@pytest.fixture(autouse=True)
def _chunks(settings):
    settings.MOKUGIFT_CHUNK_SIZE = CHUNK


def recipients(n: int, prefix: str = "p") -> list[RecipientRow]:
    return [
        RecipientRow(row_number=i + 2, recipient=f"{prefix}{i}@example.com", name=f"P {i}")
        for i in range(n)
    ]


def rewards_per_recipient(campaign_id: str) -> Counter:
    return Counter(
        r.recipient
        for r in SandboxReward.objects.filter(campaign__campaign_id=campaign_id).only(
            "recipient_email", "recipient_id"
        )
    )


def finished(batch: Batch) -> bool:
    return not Send.objects.filter(
        batch=batch, state__in=["waiting", "sending", "unknown"]
    ).exists()


def assert_exactly_once(batch: Batch, campaign_id: str, n: int) -> None:
    per_recipient = rewards_per_recipient(campaign_id)
    sends = list(batch.sends.all())
    for send in sends:
        assert send.state in ("sent", "failed"), (send.recipient, send.state)
        if send.state == "failed":
            assert send.error_message, send
    sent = {s.recipient for s in sends if s.state == "sent"}
    # Exactly one reward for every recipient whose row is sent, none for a failed one.
    assert {r: c for r, c in per_recipient.items() if c != 1} == {}
    assert set(per_recipient) == sent
    assert len(sends) == n


@pytest.mark.parametrize(
    "fault", ["http500", "error110", "drop-before", "drop-after", "timeout-after"]
)
def test_every_recipient_gets_exactly_one_reward_whatever_the_fault(
    sandbox, celery_worker, fault, caplog
):
    caplog.set_level(logging.INFO, logger="sandbox.views")
    campaign_id = f"w-{fault}"
    n = 36
    campaign = sandbox.campaign(
        campaign_id=campaign_id,
        passcode=PASSCODE,
        fault=fault,
        fault_rate=0.5,
        fault_delay=2.5,
    )
    worker = celery_worker(
        env_overrides={
            "MOKUGIFT_CHUNK_SIZE": str(CHUNK),
            "MOKUGIFT_READ_TIMEOUT": "1",
            "LOG_LEVEL": "DEBUG",
        }
    )
    batch = batch_create(campaign=campaign, mode="link", rows=recipients(n), source="csv")
    wait_for(
        lambda: finished(batch),
        timeout=120,
        message=f"{batch_counts(batch=batch)}\n{worker.log()[-3000:]}",
    )
    assert_exactly_once(batch, campaign_id, n)
    # The fault struck (else this test proves nothing): the sandbox says it served it. (The
    # ledger's own trace of it, an *unknown* row, was missing once in CI with every reward
    # still sent exactly once; the sandbox's word is the precondition, and the exactly-once
    # check above is what this test proves.)
    struck = [r for r in caplog.records if r.getMessage().startswith(f"sandbox: fault {fault} ")]
    assert struck, "the sandbox never served the fault"
    assert batch_counts(batch=batch)["sent"] == n
    # The worker marks the batch done in its own query, a moment after the last row.
    wait_for(lambda: not Batch.objects.filter(pk=batch.pk, state="sending").exists(), timeout=10)
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE
    assert PASSCODE not in worker.log()


def test_a_worker_killed_mid_send_leaves_nothing_sent_twice_or_waiting(sandbox, celery_worker):
    campaign_id = "w-kill"
    n = 60
    campaign = sandbox.campaign(campaign_id=campaign_id, passcode=PASSCODE, latency_ms=400)
    overrides = {"MOKUGIFT_CHUNK_SIZE": str(CHUNK), "MOKUGIFT_READ_TIMEOUT": "3"}
    first = celery_worker(env_overrides=overrides)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(n), source="csv")

    def a_chunk_sent_and_another_in_flight():
        counts = batch_counts(batch=batch)
        return counts["sent"] >= CHUNK and counts["sending"] > 0

    # Kill while a call is in flight (400 ms of latency), not between two chunks.
    wait_for(a_chunk_sent_and_another_in_flight, timeout=60, message=first.log()[-3000:])
    first.kill()
    counts = batch_counts(batch=batch)
    assert counts["sent"] < n, "the batch finished before the kill: make it slower"
    # Killed mid-call: rows the dead worker had claimed are stuck in sending, for the sweep.
    assert counts["sending"] > 0, counts
    second = celery_worker(env_overrides=overrides)
    wait_for(
        lambda: finished(batch),
        timeout=120,
        message=f"{batch_counts(batch=batch)}\n{second.log()[-3000:]}",
    )
    assert_exactly_once(batch, campaign_id, n)
    assert batch_counts(batch=batch)["sent"] == n
    assert not Send.objects.filter(state="waiting").exists()


def test_no_coins_pauses_the_batch_and_resume_sends_the_rest(sandbox, celery_worker):
    campaign_id = "w-coins"
    n = 30
    campaign = sandbox.campaign(campaign_id=campaign_id, passcode=PASSCODE, coins=14)
    worker = celery_worker(env_overrides={"MOKUGIFT_CHUNK_SIZE": str(CHUNK)})
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(n), source="csv")

    def paused_and_still():
        batch.refresh_from_db()
        counts = batch_counts(batch=batch)
        return batch.state == Batch.State.PAUSED and counts["sending"] == 0

    wait_for(paused_and_still, timeout=60, message=worker.log()[-3000:])
    counts = batch_counts(batch=batch)
    assert counts["sent"] == 14 and counts["waiting"] == n - 14
    assert "moku-coins" in batch.paused_reason

    sandbox_campaign_save(campaign_id=campaign_id, coins=1000)
    assert batch_resume(batch=batch) is True
    wait_for(lambda: finished(batch), timeout=60, message=worker.log()[-3000:])
    assert_exactly_once(batch, campaign_id, n)
    assert batch_counts(batch=batch)["sent"] == n


def test_errors_no_retry_can_cure_fail_the_rows_with_mokugifts_message(sandbox, celery_worker):
    campaign = sandbox.campaign(campaign_id="w-disabled", passcode=PASSCODE, enabled=False)
    worker = celery_worker(env_overrides={"MOKUGIFT_CHUNK_SIZE": str(CHUNK)})
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(8), source="csv")
    wait_for(lambda: finished(batch), timeout=60, message=worker.log()[-3000:])
    for send in batch.sends.all():
        assert send.state == "failed" and send.error_code == 103
        assert "disabled" in send.error_message
    assert SandboxReward.objects.count() == 0


def test_one_reward_is_sent_by_the_worker_with_its_link(sandbox, celery_worker):
    campaign = sandbox.campaign(campaign_id="w-one", passcode=PASSCODE)
    worker = celery_worker()
    batch = batch_create(
        campaign=campaign,
        mode="link-id",
        rows=[RecipientRow(row_number=1, recipient="user-42", name="Ann")],
        source="single",
    )
    wait_for(lambda: finished(batch), timeout=30, message=worker.log()[-3000:])
    send = batch.sends.get()
    reward = SandboxReward.objects.get()
    assert (send.state, send.remote_id, send.url) == ("sent", reward.remote_id, reward.url)


def test_a_worker_stopped_mid_send_finishes_the_call_in_flight_and_exits_cleanly(
    sandbox, celery_worker
):
    # A warm shutdown, as a supervisor asks for one: the rows of the call in flight end sent,
    # not stuck in *sending* for the sweep, and the worker exits on its own.
    campaign = sandbox.campaign(campaign_id="w-stop", passcode=PASSCODE, latency_ms=1000)
    worker = celery_worker(env_overrides={"MOKUGIFT_CHUNK_SIZE": str(CHUNK)}, beat=False)
    batch = batch_create(campaign=campaign, mode="email", rows=recipients(CHUNK), source="csv")
    wait_for(
        lambda: batch_counts(batch=batch)["sending"] == CHUNK,
        timeout=30,
        message=worker.log()[-3000:],
    )
    worker.stop()
    assert worker.process.returncode == 0, worker.log()[-3000:]
    assert batch_counts(batch=batch)["sent"] == CHUNK, worker.log()[-3000:]
    assert_exactly_once(batch, "w-stop", CHUNK)
