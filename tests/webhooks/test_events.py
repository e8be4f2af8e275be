"""Each event is emitted where the act happens: one delivery row per subscribed endpoint."""

from __future__ import annotations

import pytest
from django.utils import timezone

from campaigns.models import Approval, Campaign
from rewards.models import Batch, Send
from rewards.services.controls import batch_approve, batch_decline
from rewards.services.sending import (
    RecipientRow,
    batch_cancel,
    batch_create,
    batch_finish_if_done,
    batch_pause,
)
from tests.conftest import campaign_make
from webhooks.models import Delivery, Event
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def spring(db):
    return campaign_make("Spring", "spring-1")


@pytest.fixture(autouse=True)
def everything():
    endpoint_create(
        url="http://127.0.0.1:9/",
        description="",
        events=list(Event.values),
        enabled=True,
        actor=None,
    )


def make(campaign, n=2, by=None) -> Batch:
    rows = [RecipientRow(row_number=i + 2, recipient=f"r{i}@example.com") for i in range(n)]
    return batch_create(
        campaign=campaign, mode="email", rows=rows, created_by=by, source=Batch.Source.CSV
    )


def events() -> list[str]:
    return list(Delivery.objects.order_by("pk").values_list("event", flat=True))


def test_a_batch_that_goes_out_at_once_is_started_with_its_data(spring):
    batch = make(spring)

    assert events() == ["batch.started"]
    data = Delivery.objects.get().payload["data"]["batch"]
    assert data["id"] == batch.pk
    assert data["campaign"] == "spring-1"
    assert data["mode"] == "email"
    assert data["counts"]["waiting"] == 2
    assert data["send_at"] is None


def test_a_cancelled_batch_is_finished(spring):
    batch = make(spring)
    batch_cancel(batch=batch, actor=None)

    assert events() == ["batch.started", "batch.finished"]


def test_a_batch_whose_rows_all_ended_is_finished(spring):
    batch = make(spring)
    Send.objects.filter(batch=batch).update(state=Send.State.SENT)
    batch_finish_if_done(batch_id=batch.pk)

    assert events()[-1] == "batch.finished"
    assert Delivery.objects.order_by("pk").last().payload["data"]["batch"]["state"] == "done"


def test_a_paused_batch_is_paused(spring):
    batch = make(spring)
    batch_pause(batch_id=batch.pk, reason="backing off")

    assert events()[-1] == "batch.paused"


def test_approval_awaited_approved_and_declined_are_each_emitted(spring, marketer, manager):
    Campaign.objects.filter(pk=spring.pk).update(approval=Approval.ALWAYS)
    spring.refresh_from_db()
    first = make(spring, by=marketer)
    second = make(spring, by=marketer)
    assert events() == ["batch.awaiting_approval", "batch.awaiting_approval"]

    batch_approve(batch=first, actor=manager)
    batch_decline(batch=second, actor=manager, reason="not now")

    # Approval starts the batch inside the same service; deliveries carry no order anyway.
    assert events()[2:] == ["batch.started", "batch.approved", "batch.declined"]


def test_a_row_paid_twice_is_emitted_with_the_row(spring):
    from rewards.services import reconcile

    batch = make(spring)
    first, second = Send.objects.filter(batch=batch).order_by("pk")
    Send.objects.filter(pk=first.pk).update(state=Send.State.SENT, remote_id="901")
    Send.objects.filter(pk=second.pk).update(state=Send.State.SENT, remote_id="902")
    first.refresh_from_db()
    second.refresh_from_db()
    reconcile._flag_pair(first, row_remote_id="901", other=second, now=timezone.now())

    paid = Delivery.objects.filter(event="send.paid_twice")
    assert {d.payload["data"]["send"]["id"] for d in paid} == {first.pk, second.pk}
    assert paid[0].payload["data"]["batch"]["id"] == batch.pk


def test_a_failed_sync_is_emitted_with_its_month_and_error(settings, spring):
    from rewards.services.sync import rewards_sync_month

    settings.MOKUGIFT_SANDBOX_URL = "http://127.0.0.1:9/sandbox/api/"
    run = rewards_sync_month(campaign=spring, year=2026, month=5)

    (delivery,) = Delivery.objects.filter(event="sync.failed")
    assert delivery.payload["data"]["sync"] == {
        "id": run.pk,
        "month": "2026-05",
        "error": run.error,
    }
    assert run.error
