"""Deliveries over real HTTP to a receiver that checks each signature with standardwebhooks."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.webhooks.receiver import receiver_running
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event
from webhooks.services import (
    deliveries_sweep,
    delivery_attempt,
    delivery_send_again,
    endpoint_create,
    endpoint_secret_rotate,
    webhook_emit,
)

pytestmark = pytest.mark.django_db


def endpoint_for(receiver, events=(Event.BATCH_FINISHED,)):
    return endpoint_create(
        url=receiver.url, description="CRM", events=list(events), enabled=True, actor=None
    )


def emit_one() -> Delivery:
    (pk,) = webhook_emit(event=Event.BATCH_FINISHED, data={"batch": {"id": 7}})
    return Delivery.objects.get(pk=pk)


def test_each_delivery_is_signed_so_that_the_receiver_verifies_it_with_standardwebhooks(receiver):
    made = endpoint_for(receiver)
    delivery = emit_one()

    assert delivery_attempt(delivery_pk=delivery.pk) == Delivery.State.DELIVERED

    (got,) = receiver.received
    payload = Webhook(made.secret).verify(got.body, got.headers)
    assert payload["type"] == "batch.finished"
    assert payload["data"] == {"batch": {"id": 7}}
    assert got.headers["webhook-id"] == delivery.message_id
    assert delivery.message_id.startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY").verify(got.body, got.headers)


def test_an_endpoint_gets_only_the_events_it_chose_and_only_while_enabled(receiver):
    endpoint_for(receiver, events=[Event.SYNC_FAILED])
    off = endpoint_for(receiver, events=[Event.BATCH_FINISHED])
    Endpoint.objects.filter(pk=off.endpoint.pk).update(enabled=False)

    assert webhook_emit(event=Event.BATCH_FINISHED, data={}) == []
    assert len(webhook_emit(event=Event.SYNC_FAILED, data={})) == 1


def test_a_receiver_that_fails_twice_gets_the_retries_and_then_the_message():
    with receiver_running([500, 500, 200]) as receiver:
        made = endpoint_for(receiver)
        delivery = emit_one()
        states = [delivery_attempt(delivery_pk=delivery.pk) for _ in range(3)]

    assert states == ["pending", "pending", "delivered"]
    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery.message_id}
    for got in receiver.received:
        Webhook(made.secret).verify(got.body, got.headers)
    log = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.status_code) for a in log] == [(1, 500), (2, 500), (3, 200)]
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and delivery.last_status_code == 200


def test_a_retry_waits_longer_each_time(settings):
    from webhooks.services import retry_delay

    settings.WEBHOOK_RETRY_BASE_SECONDS = 5.0
    delays = [retry_delay(attempts=n) for n in (1, 2, 3, 4)]

    assert 5.0 <= delays[0] <= 6.0
    assert 40.0 <= delays[3] <= 48.0
    assert delays == sorted(delays)


def test_a_retry_is_not_made_before_its_time(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 60.0
    with receiver_running([500]) as receiver:
        endpoint_for(receiver)
        delivery = emit_one()
        delivery_attempt(delivery_pk=delivery.pk)

        assert delivery_attempt(delivery_pk=delivery.pk) is None
        assert len(receiver.received) == 1
        delivery.refresh_from_db()
        assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=50)


def test_a_delivery_gives_up_after_its_retry_window(settings):
    settings.WEBHOOK_RETRY_FOR_SECONDS = 0
    with receiver_running([500]) as receiver:
        endpoint_for(receiver)
        delivery = emit_one()

        assert delivery_attempt(delivery_pk=delivery.pk) == Delivery.State.FAILED
        assert delivery_attempt(delivery_pk=delivery.pk) is None


def test_a_redirect_is_not_followed_and_counts_as_a_failure():
    with receiver_running(["redirect"]) as receiver:
        endpoint_for(receiver)
        delivery = emit_one()

        assert delivery_attempt(delivery_pk=delivery.pk) == Delivery.State.PENDING

    assert [r.path for r in receiver.received] == ["/hooks/"]
    delivery.refresh_from_db()
    assert delivery.last_status_code == 302
    assert "redirect" in delivery.last_error


def test_a_slow_receiver_times_out(settings):
    settings.WEBHOOK_TIMEOUT = (1.0, 0.5)
    with receiver_running(["slow"]) as receiver:
        endpoint_for(receiver)
        delivery = emit_one()
        started = time.monotonic()
        state = delivery_attempt(delivery_pk=delivery.pk)
        took = time.monotonic() - started

    assert state == Delivery.State.PENDING
    assert took < 2.0
    delivery.refresh_from_db()
    assert delivery.last_status_code is None
    assert "timed out" in delivery.last_error.lower()


def test_an_endless_answer_is_not_read_to_its_end():
    with receiver_running(["endless"]) as receiver:
        endpoint_for(receiver)
        delivery = emit_one()
        started = time.monotonic()
        state = delivery_attempt(delivery_pk=delivery.pk)
        took = time.monotonic() - started

    assert state == Delivery.State.DELIVERED
    assert took < 3.0


def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one(receiver):
    old = endpoint_for(receiver)
    new = endpoint_secret_rotate(endpoint=old.endpoint, actor=None)
    assert new.secret != old.secret

    delivery = emit_one()
    delivery_attempt(delivery_pk=delivery.pk)
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(old.secret).verify(got.body, got.headers)
    Webhook(new.secret).verify(got.body, got.headers)

    Endpoint.objects.filter(pk=old.endpoint.pk).update(
        previous_secret_until=timezone.now() - timedelta(seconds=1)
    )
    delivery = emit_one()
    delivery_attempt(delivery_pk=delivery.pk)
    got = receiver.received[-1]
    Webhook(new.secret).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old.secret).verify(got.body, got.headers)


def test_an_attempt_another_worker_claimed_is_not_sent_again(receiver):
    endpoint_for(receiver)
    delivery = emit_one()
    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SENDING)

    assert delivery_attempt(delivery_pk=delivery.pk) is None
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_two_workers_with_the_same_task_send_it_once():
    with receiver_running(["slow"]) as receiver:
        endpoint_for(receiver)
        delivery = emit_one()
        states = []

        def work():
            try:
                states.append(delivery_attempt(delivery_pk=delivery.pk))
            finally:
                connection.close()

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(receiver.received) == 1
    assert states.count(None) == 3


def test_send_again_posts_the_same_message_id_once_more(receiver):
    endpoint_for(receiver)
    delivery = emit_one()
    delivery_attempt(delivery_pk=delivery.pk)

    delivery_send_again(delivery=delivery, actor=None)
    assert delivery_attempt(delivery_pk=delivery.pk) == Delivery.State.DELIVERED

    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.message_id] * 2
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 2


def test_the_sweep_queues_due_deliveries_and_frees_one_whose_worker_died(receiver):
    endpoint_for(receiver)
    due = emit_one()
    stuck = emit_one()
    Delivery.objects.filter(pk=stuck.pk).update(
        state=Delivery.State.SENDING, claimed_at=timezone.now() - timedelta(hours=1)
    )
    later = emit_one()
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))

    assert deliveries_sweep() == 2
    assert set(
        Delivery.objects.filter(
            state=Delivery.State.PENDING, next_attempt_at__lte=timezone.now()
        ).values_list("pk", flat=True)
    ) == {due.pk, stuck.pk}


def test_the_beat_schedule_runs_the_sweep(settings):
    assert settings.CELERY_BEAT_SCHEDULE["webhooks-sweep"]["task"] == "webhooks.sweep"


def test_a_secret_no_key_can_read_is_an_attempt_logged_and_retried_never_a_stuck_delivery(
    receiver, settings
):
    from cryptography.fernet import Fernet

    endpoint_for(receiver)
    delivery = emit_one()
    kept_keys = settings.FIELD_ENCRYPTION_KEYS
    # The key the secret was stored under was dropped from the settings.
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    assert delivery_attempt(delivery_pk=delivery.pk) == Delivery.State.PENDING
    assert receiver.received == []  # nothing goes out unsigned
    (attempt,) = DeliveryAttempt.objects.filter(delivery=delivery)
    assert attempt.status_code is None
    assert attempt.error.startswith("The endpoint's secret could not be read: A stored secret")
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING and delivery.next_attempt_at is not None

    # The key is put back: the next attempt goes out, signed.
    settings.FIELD_ENCRYPTION_KEYS = kept_keys
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert delivery_attempt(delivery_pk=delivery.pk) == Delivery.State.DELIVERED
    assert len(receiver.received) == 1
