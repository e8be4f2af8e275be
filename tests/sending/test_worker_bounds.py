"""A real Celery worker (started as the README says, without -Q) against a fake Mokugift over
real HTTP that misbehaves: an endless create answer leaves the worker's memory flat and the
rows unknown, and a campaign whose endpoint stalls does not hold up another's reward."""

from __future__ import annotations

import time

import pytest

from campaigns.services import campaign_create
from rewards.models import Batch, CampaignBackoff, Send, SendEvent
from rewards.selectors.backoff import campaign_backoff_note
from rewards.selectors.sending import batch_counts
from rewards.services.sending import RecipientRow, batch_create
from tests.client import bodies
from tests.client.server import chunks, dribble, local_server, status
from tests.worker import resident_bytes, wait_for

pytestmark = pytest.mark.worker

PASSCODE = "fake-Mokugift-passc0de"
HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<result><version>1.0</version>'
    b"<status>Success</status><transaction_id>tx-1</transaction_id>"
)
# Each as fast as the worker reads it, for ever (until the worker goes away).
ENDLESS = {
    "endless-rewards": (
        HEAD + b"<rewards>",
        b"<reward><id>r-1</id><recipient_email>a0@example.com</recipient_email></reward>",
    ),
    "endless-unsent": (
        HEAD.replace(b"Success", b"Part_Failed") + b"<rewards></rewards><unsent_rewards>",
        b"<unsent_reward/>",
    ),
    "endless-one": (
        HEAD,
        b"<reward><id>r-1</id><recipient_email>a0@example.com</recipient_email></reward>",
    ),
}
# What a worker's pool process may grow by while it reads such an answer. Without the
# bounds it grew by 14 to 50 MB/s, to 7 GB.
RSS_GROWTH = 40 * 1024 * 1024


class Endless:
    def __init__(self, head: bytes, item: bytes):
        self.head, self.block = head, item * (16384 // len(item))

    def __iter__(self):
        yield self.head
        while True:
            yield self.block


@pytest.fixture(autouse=True)
def _chunks(settings):
    settings.MOKUGIFT_CHUNK_SIZE = 4  # as the worker's, for the chains batch_create starts


@pytest.fixture
def fake_mokugift():
    with local_server() as server:
        yield server


def live_campaign(campaign_id: str):
    """A dashboard campaign of environment "live": the worker sends it to MOKUGIFT_LIVE_URL."""
    return campaign_create(
        actor=None,
        name=campaign_id,
        campaign_id=campaign_id,
        environment="live",
        passcode=PASSCODE,
    )


def rows(n: int) -> list[RecipientRow]:
    return [RecipientRow(row_number=i + 2, recipient=f"a{i}@example.com") for i in range(n)]


def test_an_endless_create_answer_leaves_the_worker_flat_and_the_rows_unknown(
    sandbox, celery_worker, fake_mokugift
):
    for campaign_id, (head, item) in ENDLESS.items():
        path = "reward/" if campaign_id == "endless-one" else "multi_rewards/"
        fake_mokugift.always(path + campaign_id, chunks(Endless(head, item)))
    # Reconciliation cannot tell what was made: the rows stay unknown for this test to see.
    fake_mokugift.always("rewards_in_month/", status(503))
    deadline = 5
    worker = celery_worker(
        env_overrides={
            "MOKUGIFT_LIVE_URL": fake_mokugift.url,
            "MOKUGIFT_CHUNK_SIZE": "4",
            "MOKUGIFT_CALL_DEADLINE": str(deadline),
            "MOKUGIFT_CAMPAIGN_BACKOFF": "60",
            "MOKUGIFT_CAMPAIGN_BACKOFF_MAX": "60",
        }
    )
    pool = worker.children()
    assert pool
    baseline = {pid: resident_bytes(pid) for pid in pool}
    batches = [
        batch_create(
            campaign=live_campaign(campaign_id),
            mode="email",
            rows=rows(1 if campaign_id == "endless-one" else 3),
            source="csv",
        )
        for campaign_id in ENDLESS
    ]
    growth = 0

    def all_unknown() -> bool:
        nonlocal growth
        growth = max(growth, *(resident_bytes(pid) - baseline[pid] for pid in pool))
        # Stop at once rather than let a worker grow without end on this machine.
        assert growth < RSS_GROWTH, f"a pool process grew by {growth} bytes"
        return not Send.objects.exclude(state="unknown").exists()

    wait_for(all_unknown, timeout=30, message=worker.log()[-3000:])

    assert growth < RSS_GROWTH
    reasons = {
        "endless-rewards": "4 rewards and unsent rewards or more, for 3 recipients asked for",
        "endless-unsent": "4 rewards and unsent rewards or more, for 3 recipients asked for",
        "endless-one": "more than one <reward> in <result>",
    }
    for batch in batches:
        reason = reasons[batch.campaign.campaign_id]
        for send in batch.sends.all():
            assert send.state == "unknown"
            assert reason in send.error_message and "Outcome unknown" in send.error_message
            # Within the deadline, and far within it: the bound ends the call, not the clock.
            claimed = SendEvent.objects.get(send=send, to_state="sending").at
            went_unknown = SendEvent.objects.get(send=send, to_state="unknown").at
            assert (went_unknown - claimed).total_seconds() < deadline
    assert PASSCODE not in worker.log()


def test_a_stalling_campaign_does_not_hold_up_another_campaigns_reward(
    sandbox, celery_worker, fake_mokugift
):
    # A byte every half second: the read timeout (2 s) never trips, the answers never end.
    fake_mokugift.always("", dribble(bodies.MULTI_REWARDS.encode(), every=0.5, at_most=60))
    deadline = 3
    worker = celery_worker(
        env_overrides={
            "MOKUGIFT_LIVE_URL": fake_mokugift.url,
            "MOKUGIFT_READ_TIMEOUT": "2",
            "MOKUGIFT_CALL_DEADLINE": str(deadline),
            "MOKUGIFT_CHUNK_SIZE": "4",
            "MOKUGIFT_CAMPAIGN_BACKOFF": "60",
            "MOKUGIFT_CAMPAIGN_BACKOFF_MAX": "60",
        },
        concurrency=2,
    )
    stalling = live_campaign("stalling")
    batch = batch_create(campaign=stalling, mode="email", rows=rows(8), source="csv")
    # Both pool processes are on the stalling campaign's two chunks...
    wait_for(
        lambda: batch_counts(batch=batch)["sending"] == 8,
        timeout=30,
        message=worker.log()[-3000:],
    )
    other = sandbox.campaign(campaign_id="quick", passcode="quick-passcode")
    started = time.monotonic()

    # ...and another campaign's one reward goes out within seconds all the same.
    single = batch_create(
        campaign=other,
        mode="link",
        rows=[RecipientRow(row_number=1, recipient="b@example.com")],
        source="single",
    )
    wait_for(
        lambda: Send.objects.filter(batch=single, state="sent").exists(),
        timeout=deadline + 6,
        message=f"{batch_counts(batch=single)}\n{worker.log()[-3000:]}",
    )

    assert time.monotonic() - started < deadline + 6
    # The stalling calls were cut at their deadline: outcome unknown, the campaign backed off
    # with its reason on the batch, and its rows wait.
    for send in batch.sends.all():
        assert send.state == "unknown"
        assert f"no complete answer within the call's deadline of {deadline} s" in (
            send.error_message
        )
    backoff = CampaignBackoff.objects.get(campaign=stalling)
    assert backoff.failures == 1
    assert "Waiting: Mokugift's endpoint for this campaign misbehaves" in campaign_backoff_note(
        campaign_pk=stalling.pk
    )
    assert Batch.objects.get(pk=batch.pk).state == Batch.State.SENDING
    assert PASSCODE not in worker.log()
