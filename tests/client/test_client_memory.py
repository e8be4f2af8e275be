"""An all_rewards answer of 200,000 rewards, streamed over real HTTP from a local server, is read
in memory that does not grow with it: the tracemalloc peak (Python's objects) stays far under the
document's size, and so does the process's resident memory (libxml2's tree is not Python's)."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from rewards.mokugift import MokugiftClient
from tests.client import bodies
from tests.client.server import chunks, local_server

REWARDS = 200_000


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.scale
def test_two_hundred_thousand_rewards_are_read_in_flat_memory():
    size = bodies.query_size(REWARDS)
    assert size > 20_000_000  # the whole document: about 26 MB of XML

    with local_server() as server:
        server.then(chunks(bodies.query_chunks_repeated(REWARDS)))
        client = MokugiftClient(base_url=server.url, campaign_id="c-1", timeout=(5, 30))
        count = trees = 0
        peak_at_half = None
        resident_at_quarter = None
        tracemalloc.start()
        try:
            with client.all_rewards() as stream:
                for record in stream:
                    count += 1
                    trees += record.tree_count
                    if count == REWARDS // 4:
                        resident_at_quarter = resident_bytes()
                    if count == REWARDS // 2:
                        peak_at_half = tracemalloc.get_traced_memory()[1]
                summary = stream.summary
            peak = tracemalloc.get_traced_memory()[1]
            resident_growth = resident_bytes() - resident_at_quarter
        finally:
            tracemalloc.stop()

    assert count == REWARDS == summary.reward_count
    assert trees == summary.tree_count
    # Well under the document: a few chunks of 64 KiB and the rewards not yet handed out.
    assert peak < size / 20, f"peak {peak} bytes for a document of {size} bytes"
    # And flat: the second half of the rewards did not raise the peak by much.
    assert peak - peak_at_half < 256 * 1024, (peak_at_half, peak)
    # The parser's tree lives outside Python's allocator: the last three quarters of the
    # answer (about 20 MB of XML, a tree several times that) must not stay in it either.
    assert resident_growth < size / 4, f"resident memory grew by {resident_growth} bytes"
