"""The API end to end: 1,000 rewards asked for in one POST, sent by a real Celery worker to the
sandbox over real HTTP, read back through the API, and the same request again is its first
answer replayed, with not one reward more. PostgreSQL and Redis, as production runs."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection

from rewards.models import Batch
from sandbox.models import SandboxReward
from tests.conftest import need_service
from tests.worker import celery_worker  # noqa: F401  (the fixture)

pytestmark = pytest.mark.worker

PASSCODE = "api-w0rker-Passcode-not-shown"
N = 1000
# The batch states after which nothing more happens without someone's act.
FINAL = {"done", "cancelled", "declined", "paused"}


@pytest.fixture
def production_services():
    """PostgreSQL and Redis, or the test fails in CI (skips elsewhere): before the worker
    starts, so that a missing Redis is named as such, not found as a worker's broken start."""
    if connection.vendor != "postgresql":
        need_service("PostgreSQL")
    if not settings.REDIS_URL:
        need_service("Redis (REDIS_URL)")
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        need_service(f"Redis at REDIS_URL: {error}")
    finally:
        client.close()


def batch_wait_final(api, batch_id: int, *, timeout: float) -> dict:
    """The batch as GET /batches/{id} answers it, once its state is final."""
    deadline = time.monotonic() + timeout
    read: dict = {}
    while time.monotonic() < deadline:
        answer = api.get(f"/batches/{batch_id}")
        assert answer.status_code == 200, answer.content
        read = answer.json()
        if read["state"] in FINAL:
            return read
        time.sleep(0.25)
    raise AssertionError(
        f"Batch {batch_id} not final after {timeout} s: state {read.get('state')!r}, "
        f"counts {read.get('counts')}, failures {read.get('failures')}"
    )


def rows_read(api, batch_id: int) -> list[dict]:
    """Every row, a cursor page at a time."""
    rows, cursor, pages = [], "", 0
    while True:
        answer = api.get(f"/batches/{batch_id}/rows", {"cursor": cursor} if cursor else {})
        assert answer.status_code == 200, answer.content
        page = answer.json()
        rows += page["rows"]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            return rows
        assert pages <= N, "the cursor never ends"


def rewards_per_recipient(campaign_id: str) -> Counter:
    return Counter(
        SandboxReward.objects.filter(campaign__campaign_id=campaign_id).values_list(
            "recipient_email", flat=True
        )
    )


def test_a_thousand_rewards_through_the_api_are_sent_once_and_the_retry_is_a_replay(
    production_services,
    sandbox,
    celery_worker,  # noqa: F811
    api_as,
    marketer,
):
    # The sandbox as the calm worker tests have it: no fault, no latency.
    campaign = sandbox.campaign(campaign_id="api-w-1000", passcode=PASSCODE)
    worker = celery_worker()
    api = api_as(marketer, scopes="send,read")
    body = {
        "campaign": campaign.campaign_id,
        "mode": "email",
        "recipients": [{"recipient": f"api{i}@example.com", "name": f"Api {i}"} for i in range(N)],
    }
    key = f"api-worker-{uuid.uuid4().hex}"

    first = api.post("/batches", body, key=key)
    assert first.status_code == 201, first.content[:2000]
    assert "Idempotent-Replayed" not in first
    created = first.json()
    assert (created["total"], created["state"], created["source"]) == (N, "sending", "api")

    try:
        final = batch_wait_final(api, created["id"], timeout=45)
    except AssertionError as error:
        raise AssertionError(f"{error}\nworker log:\n{worker.log()[-3000:]}") from None
    assert final["state"] == "done", final
    assert final["counts"] == {
        "waiting": 0,
        "sending": 0,
        "sent": N,
        "failed": 0,
        "unknown": 0,
        "cancelled": 0,
    }
    assert final["finished_at"] is not None

    rows = rows_read(api, created["id"])
    assert [row["row"] for row in rows] == list(range(1, N + 1))
    assert {row["state"] for row in rows} == {"sent"}
    assert [row["recipient"] for row in rows] == [r["recipient"] for r in body["recipients"]]
    assert all(row["reward_id"] for row in rows)
    assert len({row["reward_id"] for row in rows}) == N

    # At the sandbox: exactly one reward per recipient, and the ones the rows name.
    per_recipient = rewards_per_recipient(campaign.campaign_id)
    assert {r: c for r, c in per_recipient.items() if c != 1} == {}
    assert set(per_recipient) == {r["recipient"] for r in body["recipients"]}
    assert set(
        SandboxReward.objects.filter(campaign__campaign_id=campaign.campaign_id).values_list(
            "remote_id", flat=True
        )
    ) == {row["reward_id"] for row in rows}

    # The same request again, as a client that never saw the first answer would send it.
    again = api.post("/batches", body, key=key)
    assert again.status_code == first.status_code
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert Batch.objects.count() == 1
    # Long enough for a second batch's first chunk to reach the sandbox, were there one.
    time.sleep(2)
    assert rewards_per_recipient(campaign.campaign_id) == per_recipient
    assert sum(per_recipient.values()) == N
    assert SandboxReward.objects.count() == N
    assert PASSCODE not in worker.log()
    assert api.secret not in worker.log()
