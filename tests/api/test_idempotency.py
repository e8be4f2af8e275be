"""Idempotency-Key, with Stripe's semantics: the first answer replayed for the same key and
body, another body refused, two requests at once doing the work once, and a failed or dead
first request letting the key be used again."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from api.idempotency import STALE, batch_idempotency_key
from api.models import IdempotencyRecord
from api.services import api_key_create
from rewards.models import Batch, Send
from tests.api.conftest import one
from tests.conftest import need_service

pytestmark = pytest.mark.django_db


def test_the_same_key_and_body_answers_the_first_answer_again(api_as, marketer, spring):
    api = api_as(marketer)
    first = api.post("/batches", one(), key="k-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    again = api.post("/batches", one(), key="k-1")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert Batch.objects.count() == 1 and Send.objects.count() == 1


def test_the_same_json_spaced_otherwise_is_the_same_body(api_as, marketer, spring):
    api = api_as(marketer)
    api.post("/batches", one(), key="k-1")
    spaced = '{ "recipients": [{"name": "Ann", "recipient": "ann@example.com"}],\n'
    spaced += '  "mode": "email", "campaign": "spring-1" }'
    again = api.post("/batches", spaced, key="k-1")
    assert again["Idempotent-Replayed"] == "true"
    assert Batch.objects.count() == 1


def test_the_same_key_with_another_body_is_refused_clearly(api_as, marketer, spring):
    api = api_as(marketer)
    api.post("/batches", one(), key="k-1")
    other = api.post("/batches", one("bob@example.com"), key="k-1")
    assert other.status_code == 422
    problem = other.json()
    assert problem["type"].endswith("/idempotency-key-reused")
    assert "another body" in problem["detail"]
    assert problem["errors"] == [
        {"field": "Idempotency-Key", "message": "Used before for another request."}
    ]
    assert Batch.objects.count() == 1


def test_the_same_key_on_another_call_is_refused(api_as, marketer, spring):
    api = api_as(marketer)
    created = api.post("/batches", one(), key="k-1").json()
    refused = api.post(f"/batches/{created['id']}/cancel", key="k-1")
    assert refused.status_code == 422
    assert Batch.objects.get().state == Batch.State.SENDING


def test_a_refusal_is_an_answer_and_is_replayed(api_as, marketer, spring):
    spring.monthly_budget = 0
    spring.save()
    api = api_as(marketer)
    first = api.post("/batches", one(), key="k-1")
    assert first.status_code == 422
    spring.monthly_budget = 10
    spring.save()
    again = api.post("/batches", one(), key="k-1")
    assert (again.status_code, again["Idempotent-Replayed"]) == (422, "true")
    assert api.post("/batches", one(), key="k-2").status_code == 201


def test_two_people_may_use_the_same_key(api_as, marketer, admin_user, spring):
    assert api_as(marketer).post("/batches", one(), key="k-1").status_code == 201
    theirs = api_as(admin_user).post("/batches", one(), key="k-1")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    assert Batch.objects.count() == 2


def test_a_request_that_failed_on_our_side_leaves_the_key_free(
    api_as, marketer, spring, monkeypatch
):
    from api.routes import batches

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    api = api_as(marketer)
    monkeypatch.setattr(batches, "batch_out", broken)
    failed = api.post("/batches", one(), key="k-1")
    assert failed.status_code == 500
    assert b"database gone" not in failed.content
    monkeypatch.undo()
    # The batch was written before the failure: the retry finds it by the key, not a second.
    again = api.post("/batches", one(), key="k-1")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert Batch.objects.count() == 1


def test_a_key_whose_first_request_died_is_taken_over_without_a_second_batch(
    api_as, marketer, spring
):
    api = api_as(marketer)
    api.post("/batches", one(), key="k-1")
    # As if the process died after the batch was written, before the answer was kept.
    IdempotencyRecord.objects.update(
        status=None, body=b"", created_at=timezone.now() - STALE - dt.timedelta(seconds=1)
    )
    again = api.post("/batches", one(), key="k-1")
    assert again.status_code == 201
    assert again.json()["id"] == Batch.objects.get().pk
    assert Batch.objects.get().idempotency_key == batch_idempotency_key(
        user_pk=marketer.pk, key="k-1"
    )


def test_a_key_is_kept_for_its_window_then_is_new_again(api_as, marketer, spring, settings):
    api = api_as(marketer)
    api.post("/batches", one(), key="k-1")
    IdempotencyRecord.objects.update(
        created_at=timezone.now() - dt.timedelta(hours=settings.API_IDEMPOTENCY_HOURS - 1)
    )
    assert api.post("/batches", one("bob@example.com"), key="k-1").status_code == 422
    assert settings.API_IDEMPOTENCY_HOURS >= 24


def test_a_key_too_long_is_refused(api_as, marketer, spring):
    answer = api_as(marketer).post("/batches", one(), key="k" * 256)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "Idempotency-Key"


def test_old_keys_are_purged(api_as, marketer, spring, settings):
    from api.tasks import idempotency_purge

    api = api_as(marketer)
    api.post("/batches", one(), key="old")
    api.post("/batches", one("bob@example.com"), key="new")
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - dt.timedelta(hours=settings.API_IDEMPOTENCY_HOURS + 1)
    )
    assert idempotency_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db(transaction=True)
def test_two_requests_with_one_key_at_the_same_moment_make_one_batch(marketer, spring):
    if connection.vendor != "postgresql":
        need_service("the race is proven on PostgreSQL, whose rows lock as production's do")
    secret = api_key_create(user=marketer, name="race", scopes="send,read").secret
    body = one()
    body["recipients"] = [{"recipient": f"r{i}@example.com"} for i in range(2000)]
    answers: list = []
    start = threading.Barrier(4)

    def post():
        try:
            start.wait()
            answers.append(
                Client().post(
                    "/api/v1/batches",
                    body,
                    content_type="application/json",
                    headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "same"},
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Batch.objects.count() == 1
    assert Send.objects.count() == 2000
    assert sorted(a.status_code for a in answers) == [201] * 4
    assert {a.json()["id"] for a in answers} == {Batch.objects.get().pk}
    assert sum(1 for a in answers if a.get("Idempotent-Replayed") == "true") == 3
