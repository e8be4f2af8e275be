"""With a real Celery worker: a delivery queued after the commit, retried until it lands."""

from __future__ import annotations

from django.db import transaction
from standardwebhooks.webhooks import Webhook

from tests.webhooks.receiver import receiver_running
from tests.worker import celery_worker, wait_for  # noqa: F401  (the fixture)
from webhooks.models import Delivery, DeliveryAttempt, Event
from webhooks.services import endpoint_create, webhook_emit


def test_a_worker_delivers_after_the_commit_and_retries_a_receiver_that_fails_twice(
    celery_worker,  # noqa: F811
):
    celery_worker(
        env_overrides={
            "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "WEBHOOK_RETRY_BASE_SECONDS": "0.3",
        }
    )
    with receiver_running([500, 500, 200]) as receiver:
        made = endpoint_create(
            url=receiver.url, description="", events=[Event.BATCH_PAUSED], enabled=True, actor=None
        )
        with transaction.atomic():
            (pk,) = webhook_emit(event=Event.BATCH_PAUSED, data={"batch": {"id": 1}})
            # Queued after the commit only: nothing is sent while the transaction is open.
            assert receiver.received == []

        wait_for(
            lambda: Delivery.objects.get(pk=pk).state == Delivery.State.DELIVERED,
            timeout=30,
            message="the delivery never landed",
        )

    assert len(receiver.received) == 3
    for got in receiver.received:
        Webhook(made.secret).verify(got.body, got.headers)
    assert list(
        DeliveryAttempt.objects.filter(delivery_id=pk)
        .order_by("number")
        .values_list("status_code", flat=True)
    ) == [500, 500, 200]
