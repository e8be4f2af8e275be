"""The spending controls with the real parts: a Celery worker with beat (the sweep on its
schedule), the broker, PostgreSQL and the sandbox over HTTP. What must show: a batch awaiting
approval makes nothing however often the sweep runs, and goes out in full once approved; a
scheduled batch starts at its time, not before, not at a time it was moved from, never once
cancelled; two confirmations at once cannot spend one budget twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from campaigns.models import Approval
from campaigns.services import campaign_update
from rewards.models import Batch, Send
from rewards.services import controls
from rewards.services.controls import batch_approve, batch_reschedule, budget_month_of
from rewards.services.sending import RecipientRow, batch_cancel, batch_create
from sandbox.models import SandboxReward
from tests.conftest import need_service
from tests.worker import wait_for

PASSCODE = "c0ntrols-Passcode-live"
SWEEP = 1.0  # seconds between two sweeps of the worker's beat


def rows(n: int, prefix: str) -> list[RecipientRow]:
    return [RecipientRow(row_number=i + 2, recipient=f"{prefix}{i}@example.com") for i in range(n)]


def rewards_for(prefix: str) -> Counter:
    """The sandbox's rewards per recipient, for the recipients named `prefix...`."""
    return Counter(
        SandboxReward.objects.filter(recipient_email__startswith=prefix).values_list(
            "recipient_email", flat=True
        )
    )


def sweeps_done(worker) -> int:
    """How many sweeps the worker has finished (its log, at level INFO, says each)."""
    return sum(
        1
        for line in worker.log().splitlines()
        if "Task rewards.sends_sweep[" in line and " succeeded in " in line
    )


def all_sent(batch: Batch) -> bool:
    return set(batch.sends.values_list("state", flat=True)) == {Send.State.SENT}


@pytest.mark.worker
def test_a_batch_awaiting_approval_makes_nothing_until_a_second_person_approves_it(
    sandbox, celery_worker, marketer, manager
):
    campaign = sandbox.campaign(campaign_id="ctl-approve", passcode=PASSCODE)
    campaign_update(campaign=campaign, actor=None, approval=Approval.ALWAYS)
    worker = celery_worker(env_overrides={"MOKUGIFT_SWEEP_INTERVAL": str(SWEEP)}, beat=True)
    batch = batch_create(
        campaign=campaign, mode="email", rows=rows(12, "ap"), created_by=marketer, source="csv"
    )
    assert batch.state == Batch.State.AWAITING_APPROVAL
    # Two whole sweep intervals after the batch was written (three sweeps): none sends it.
    seen = sweeps_done(worker)
    wait_for(
        lambda: sweeps_done(worker) >= seen + 3,
        timeout=30,
        message="the worker's beat did not sweep",
    )
    assert rewards_for("ap") == Counter()
    assert set(batch.sends.values_list("state", flat=True)) == {Send.State.WAITING}
    batch.refresh_from_db()
    assert batch.state == Batch.State.AWAITING_APPROVAL

    batch_approve(batch=batch, actor=manager)
    wait_for(lambda: all_sent(batch), timeout=60, message="the approved batch was not sent")
    assert rewards_for("ap") == Counter({f"ap{i}@example.com": 1 for i in range(12)})
    wait_for(lambda: Batch.objects.get(pk=batch.pk).state == Batch.State.DONE, timeout=20)


@pytest.mark.worker
def test_a_scheduled_batch_starts_at_its_time_not_at_one_it_left_and_never_once_cancelled(
    sandbox, celery_worker, marketer
):
    campaign = sandbox.campaign(campaign_id="ctl-schedule", passcode=PASSCODE)
    worker = celery_worker(env_overrides={"MOKUGIFT_SWEEP_INTERVAL": str(SWEEP)}, beat=True)

    def scheduled(prefix: str, at) -> Batch:
        batch = batch_create(
            campaign=campaign,
            mode="email",
            rows=rows(3, prefix),
            created_by=marketer,
            source="csv",
            send_at=at,
        )
        assert batch.state == Batch.State.SCHEDULED
        return batch

    first_time = timezone.now() + timedelta(seconds=6)
    on_time = scheduled("on", first_time)
    moved = scheduled("mv", first_time)
    withdrawn = scheduled("cx", first_time)
    later = first_time + timedelta(seconds=15)
    batch_reschedule(batch=moved, actor=marketer, send_at=later)
    assert batch_cancel(batch=withdrawn, actor=marketer) == 3

    wait_for(lambda: all_sent(on_time), timeout=60 + 6, message="not sent within a minute")
    on_time.refresh_from_db()
    assert first_time <= on_time.started_at <= first_time + timedelta(seconds=60)
    assert (
        min(
            SandboxReward.objects.filter(recipient_email__startswith="on").values_list(
                "created", flat=True
            )
        )
        >= first_time
    )
    assert rewards_for("on") == Counter({f"on{i}@example.com": 1 for i in range(3)})

    # Its first time's task, and the sweeps after it, leave the moved batch waiting.
    seen = sweeps_done(worker)
    wait_for(lambda: sweeps_done(worker) >= seen + 2, timeout=30)
    assert timezone.now() < later, "too slow to look between the two times"
    moved.refresh_from_db()
    assert moved.state == Batch.State.SCHEDULED and moved.started_at is None
    assert rewards_for("mv") == Counter()

    wait_for(lambda: all_sent(moved), timeout=60 + 15, message="the moved batch was not sent")
    moved.refresh_from_db()
    assert later <= moved.started_at <= later + timedelta(seconds=60)
    assert rewards_for("mv") == Counter({f"mv{i}@example.com": 1 for i in range(3)})

    # Long past its time, with many sweeps and its own task gone by: nothing of it was made.
    assert rewards_for("cx") == Counter()
    withdrawn.refresh_from_db()
    assert withdrawn.state == Batch.State.CANCELLED and withdrawn.started_at is None
    assert set(withdrawn.sends.values_list("state", flat=True)) == {Send.State.CANCELLED}


@pytest.mark.django_db(transaction=True)
def test_two_confirmations_at_once_cannot_spend_one_budget_twice(
    campaign, marketer, isolated_broker, monkeypatch
):
    if connection.vendor != "postgresql":
        need_service("PostgreSQL")
    campaign_update(campaign=campaign, actor=None, monthly_budget=10)
    # Each confirmation counts what is used, then dawdles before writing its rows: without the
    # campaign's row lock both would count 0 and both would write.
    real_budget_used = controls.budget_used

    def slow_budget_used(**kw):
        used = real_budget_used(**kw)
        time.sleep(0.5)
        return used

    monkeypatch.setattr(controls, "budget_used", slow_budget_used)
    barrier = threading.Barrier(2)
    made: list[Batch] = []
    refused: list[ValidationError] = []

    def confirm(prefix: str) -> None:
        try:
            barrier.wait(timeout=10)
            made.append(
                batch_create(
                    campaign=campaign,
                    mode="email",
                    rows=rows(6, prefix),
                    created_by=marketer,
                    source="csv",
                )
            )
        except ValidationError as error:
            refused.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm, args=(p,)) for p in ("t1-", "t2-")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(made) == 1 and len(refused) == 1
    assert refused[0].messages == [
        "Over the monthly budget of Spring: 6 of 10 used this month; this batch needs 6. "
        "Nothing was sent."
    ]
    assert Batch.objects.count() == 1 and Send.objects.count() == 6
    monkeypatch.setattr(controls, "budget_used", real_budget_used)

    # Two of the winner's rows fail: they give their budget back, and six more now fit.
    winner = made[0]
    failed = list(winner.sends.order_by("row_number").values_list("pk", flat=True)[:2])
    Send.objects.filter(pk__in=failed).update(state=Send.State.FAILED)
    assert controls.budget_used(campaign_pk=campaign.pk, month=budget_month_of(timezone.now())) == 4
    batch_create(
        campaign=campaign, mode="email", rows=rows(6, "t3-"), created_by=marketer, source="csv"
    )
    with pytest.raises(ValidationError, match="10 of 10 used this month; this batch needs 1"):
        batch_create(
            campaign=campaign, mode="email", rows=rows(1, "t4-"), created_by=marketer, source="csv"
        )
