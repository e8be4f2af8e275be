"""all_rewards and rewards_in_month stream: a campaign of 200,000 rewards in flat memory."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import requests
from django.db import connection

from sandbox.models import SandboxCampaign, SandboxReward
from sandbox.services import sandbox_rewards_fill

BIG = 200_000


def _fill(campaign: SandboxCampaign, count: int) -> None:
    """`count` rewards, a second apart, the last one now: the create path is tested elsewhere.
    On PostgreSQL in one INSERT (fast); elsewhere by the portable service."""
    if connection.vendor != "postgresql":
        sandbox_rewards_fill(campaign_id=campaign.campaign_id, count=count)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO sandbox_sandboxreward (campaign_id, remote_id, transaction_id,
                recipient_email, recipient_id, name, created, tree_count, emailed, url)
            SELECT %s, 'r' || n, 't' || (n / 1000), 'person' || n || '@example.com', '', '',
                now() - make_interval(secs => %s - n), 2, true, 'http://x/' || n
            FROM generate_series(1, %s) AS n
            """,
            [campaign.pk, count, count],
        )


def _stream(url: str) -> tuple[int, bytes, float]:
    """(rewards seen, the last 300 bytes, peak MiB traced while it was served and read).

    The server runs in a thread of this process, so tracemalloc sees both ends. The client
    side only counts, to keep the figure about the server.
    """
    seen = 0
    tail = b""
    tracemalloc.start()
    try:
        with requests.get(url, stream=True, timeout=(5, 60)) as response:
            assert response.status_code == 200
            assert "Content-Length" not in response.headers
            for chunk in response.iter_content(chunk_size=64 * 1024):
                window = tail[-16:] + chunk
                seen += window.count(b"</reward>") - tail[-16:].count(b"</reward>")
                tail = window[-300:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen, tail, peak / 2**20


@pytest.mark.scale
def test_all_rewards_streams_200000_rewards_in_flat_memory(sandbox):
    sandbox.campaign("big", "pass-1", trees_per_reward=2)
    _fill(SandboxCampaign.objects.get(campaign_id="big"), BIG)

    started = time.perf_counter()
    seen, tail, peak_mib = _stream(sandbox.api_url + "all_rewards/big")
    elapsed = time.perf_counter() - started

    assert seen == BIG
    last = (
        SandboxReward.objects.filter(campaign__campaign_id="big").order_by("created", "id").last()
    )
    assert f"<id>{last.remote_id}</id>".encode() in tail
    assert tail.endswith(
        f"</rewards><summary><reward_count>{BIG}</reward_count>"
        f"<tree_count>{2 * BIG}</tree_count></summary></result>\n".encode()
    )
    # The document is about 30 MB; server and client together (both in this process) stay
    # far below it, because neither ever holds more than a chunk.
    assert peak_mib < 8, f"peak {peak_mib:.1f} MiB"
    assert elapsed < 60, f"{elapsed:.1f} s"
    print(f"all_rewards: {BIG} rewards in {elapsed:.1f} s, peak {peak_mib:.1f} MiB")


def test_rewards_in_month_streams_too(sandbox):
    sandbox.campaign("big", "pass-1", trees_per_reward=2)
    _fill(SandboxCampaign.objects.get(campaign_id="big"), 20_000)

    seen, tail, _ = _stream(sandbox.api_url + "rewards_in_month/big")

    # Made over the last 20,000 seconds: at the start of a month some fall in the last one.
    assert 0 < seen <= 20_000
    assert f"<summary><reward_count>{seen}</reward_count>".encode() in tail
