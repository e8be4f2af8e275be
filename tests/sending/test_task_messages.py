"""What the sending code puts on the broker: primary keys only, never a passcode."""

from __future__ import annotations

import base64
import json

import pytest
from celery.signals import before_task_publish

from rewards.models import Batch
from rewards.services.chunk import batch_send_chunk
from rewards.services.reconcile import campaign_reconcile
from rewards.services.sending import RecipientRow, batch_create
from tests.worker import queue_names

PASSCODE = "Msg-passc0de-never-on-the-wire"


@pytest.fixture
def published():
    """Every task message this process publishes: (task name, args, kwargs, headers)."""
    seen = []

    def record(sender=None, body=None, headers=None, **_):
        args, kwargs, _embed = body
        seen.append((sender, args, kwargs, headers))

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


def raw_queue(settings) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return [raw for name in queue_names() for raw in client.lrange(name, 0, -1)]
    finally:
        client.close()


def test_tasks_carry_ids_only_and_never_the_passcode(sandbox, settings, isolated_broker, published):
    settings.MOKUGIFT_CHUNK_SIZE = 3
    settings.MOKUGIFT_RECONCILE_SETTLE = 0
    settings.MOKUGIFT_COMMIT_HORIZON = 0
    campaign = sandbox.campaign(
        campaign_id="msg-1", passcode=PASSCODE, fault="drop-after", fault_rate=1.0
    )
    batch = batch_create(
        campaign=campaign,
        mode="link",
        rows=[RecipientRow(row_number=i + 2, recipient=f"m{i}@example.com") for i in range(7)],
        source="csv",
    )
    # What the worker would publish in turn: the next chunk, a reconcile pass, retries.
    batch_send_chunk(batch_id=batch.pk)
    campaign_reconcile(campaign_pk=campaign.pk)
    batch_send_chunk(batch_id=batch.pk)

    names = {name for name, *_ in published}
    assert {"rewards.batch_send_chunk", "rewards.campaign_reconcile"} <= names
    for name, args, kwargs, headers in published:
        assert all(isinstance(a, int) for a in args), (name, args)
        assert kwargs == {}
        assert PASSCODE not in repr((args, kwargs, headers))
    assert ("rewards.batch_send_chunk", [batch.pk]) in [(n, list(a)) for n, a, *_ in published]

    if settings.REDIS_URL:
        # And on the wire, as the worker will read it.
        messages = raw_queue(settings)
        assert messages
        for raw in messages:
            assert PASSCODE.encode() not in raw
            message = json.loads(raw)
            body = base64.b64decode(message["body"])
            assert PASSCODE.encode() not in body
            args, kwargs, _ = json.loads(body)
            assert args and all(isinstance(a, int) for a in args)
    assert Batch.objects.count() == 1
