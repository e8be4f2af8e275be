"""A sync has bounds: a deadline and a row cap. Past either, or on any failure, the run ends
failed with the reason, and takes back the rows it had added. Answers come over real HTTP from
the scripted local server of the client's tests."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from rewards.models import MirroredReward, SyncRun
from rewards.services.sync import rewards_sync_all, rewards_sync_month
from tests.client import bodies
from tests.client.server import chunks, local_server
from tests.mirror.helpers import mirror_add

HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<result><version>1.0</version>'
    b"<status>Success</status><rewards>"
)
TAIL = b"</rewards><summary><reward_count>0</reward_count><tree_count>0</tree_count></summary>"


def rewards(count: int, *, every: float = 0.0, start: int = 0):
    """A query answer of `count` rewards (r-0, r-1...), a reward every `every` seconds."""
    yield HEAD
    for n in range(start, start + count):
        if every:
            time.sleep(every)
        yield bodies.query_reward(n).encode()
    yield TAIL + b"</result>"


@pytest.fixture
def server(settings):
    with local_server() as running:
        settings.MOKUGIFT_SANDBOX_URL = running.url
        settings.MOKUGIFT_CONNECT_TIMEOUT, settings.MOKUGIFT_READ_TIMEOUT = 2.0, 2.0
        settings.MIRROR_SYNC_BATCH_SIZE = 500
        yield running


def test_an_answer_that_lists_more_rewards_than_the_cap_fails_the_run_and_leaves_nothing(
    server, campaign, settings
):
    # Far more than the cap, as fast as the client reads: as good as endless here.
    settings.MIRROR_SYNC_MAX_ROWS = 3000
    server.then(chunks(rewards(60_000)))
    started = time.monotonic()

    run = rewards_sync_all(campaign=campaign)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert "more than 3,000 rewards (MIRROR_SYNC_MAX_ROWS)" in run.error
    assert "taken out again" in run.error
    assert run.finished_at is not None and run.created == 0
    assert not MirroredReward.objects.filter(campaign=campaign).exists()
    assert time.monotonic() - started < 10


def test_a_sync_past_its_deadline_fails_the_run_with_the_reason(server, campaign, settings):
    # A reward every 10 ms flows well under the read timeout, for 20 s if left alone.
    settings.MIRROR_SYNC_DEADLINE = 1.5
    server.then(chunks(rewards(2000, every=0.01)))
    started = time.monotonic()

    run = rewards_sync_all(campaign=campaign)

    assert time.monotonic() - started < 3
    assert run.outcome == SyncRun.Outcome.FAILED
    assert "MIRROR_SYNC_DEADLINE (1.5 s)" in run.error
    assert not MirroredReward.objects.filter(campaign=campaign).exists()


def test_a_run_that_fails_midway_takes_back_only_the_rows_it_added(server, campaign):
    before = timezone.now().replace(year=2026, month=5, day=1)
    kept = mirror_add(campaign, before, remote_id="r-0")
    # 1,200 rewards written in batches, then a body that is not the API's XML.
    server.then(chunks([*list(rewards(1200))[:-1], b"<not-xml"]))

    run = rewards_sync_month(campaign=campaign, year=2026, month=5)

    assert run.outcome == SyncRun.Outcome.FAILED
    # Two batches of 500 were written before the failure (r-0 was there already)...
    assert run.rewards_read == 1000
    assert run.error.endswith(". The 999 rewards it had added to the mirror were taken out again.")
    # ...and taken back; the row from before the run is still there, unflagged.
    assert list(MirroredReward.objects.filter(campaign=campaign)) == [kept]
    kept.refresh_from_db()
    assert kept.missing_since is None


def test_a_complete_answer_under_the_bounds_is_mirrored(server, campaign, settings):
    settings.MIRROR_SYNC_MAX_ROWS = 1200
    server.then(chunks(rewards(1200)))

    run = rewards_sync_all(campaign=campaign)

    assert (run.outcome, run.created, run.error) == (SyncRun.Outcome.SUCCEEDED, 1200, "")
    assert MirroredReward.objects.filter(campaign=campaign).count() == 1200
