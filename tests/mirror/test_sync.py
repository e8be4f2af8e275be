"""The sync: from the sandbox over real HTTP into the mirror, and the upsert on its own."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rewards.models import MirroredReward, MonthlySummary, SyncRun
from rewards.mokugift import RewardRecord
from rewards.mokugift.parser import _ResultParser
from rewards.selectors.mirror import ledger_not_in_mokugift, report_for_year
from rewards.services.sync import (
    MirrorRefused,
    mirror_records_save,
    monthly_summaries_from_mirror,
    rewards_sync_all,
    rewards_sync_month,
)
from rewards.tasks.sync import sync_campaign_month
from sandbox.models import SandboxCampaign, SandboxReward
from tests.mirror.helpers import sandbox_rewards_add, send_add

MAY = dt.datetime(2026, 5, 10, 12, 0, tzinfo=dt.UTC)
JUNE = dt.datetime(2026, 6, 3, 8, 30, tzinfo=dt.UTC)


def _record(n: int, date: dt.datetime = MAY, trees: int = 1) -> RewardRecord:
    return RewardRecord(
        id=f"r{n}",
        date=date,
        recipient_email=f"p{n}@example.com",
        recipient_id="",
        tree_count=trees,
    )


# --- The upsert, fed a plain iterable ------------------------------------------------------


def test_the_upsert_counts_created_then_nothing_then_what_changed(campaign):
    first = timezone.now()
    counts = mirror_records_save(
        campaign_id=campaign.pk, records=(_record(n) for n in range(7)), seen_at=first, batch_size=3
    )
    assert (counts.read, counts.created, counts.changed) == (7, 7, 0)

    again = mirror_records_save(
        campaign_id=campaign.pk, records=[_record(n) for n in range(7)], seen_at=first, batch_size=3
    )
    assert (again.read, again.created, again.changed) == (7, 0, 0)

    later = first + dt.timedelta(hours=2)
    changed = mirror_records_save(
        campaign_id=campaign.pk,
        records=[_record(0, trees=5), _record(1), _record(99)],
        seen_at=later,
    )
    assert (changed.read, changed.created, changed.changed) == (3, 1, 1)
    assert MirroredReward.objects.get(remote_id="r0").tree_count == 5
    assert MirroredReward.objects.get(remote_id="r0").first_seen_at == first
    assert MirroredReward.objects.count() == 8


@pytest.mark.parametrize("mirror_empty_before", [True, False])
def test_an_id_listed_twice_makes_one_mirrored_reward(campaign, mirror_empty_before):
    seen_at = timezone.now()
    if not mirror_empty_before:
        mirror_records_save(campaign_id=campaign.pk, records=[_record(50)], seen_at=seen_at)
    # Twice in one batch, and again in the next batch.
    records = [_record(1), _record(2), _record(1), _record(3), _record(1)]
    counts = mirror_records_save(
        campaign_id=campaign.pk, records=records, seen_at=seen_at, batch_size=3
    )
    assert (counts.read, counts.created) == (5, 3)
    assert MirroredReward.objects.filter(remote_id="r1").count() == 1


def test_the_upsert_costs_queries_per_batch_never_per_reward(
    campaign, django_assert_max_num_queries
):
    def sync(n: int, trees: int) -> None:
        records = (_record(i, trees=trees) for i in range(n))
        mirror_records_save(
            campaign_id=campaign.pk, records=records, seen_at=timezone.now(), batch_size=500
        )

    # 2,000 rewards in 4 batches, into an empty mirror, then every one of them changed.
    with django_assert_max_num_queries(60):
        sync(2000, trees=1)
    with django_assert_max_num_queries(60):
        sync(2000, trees=2)
    assert MirroredReward.objects.filter(tree_count=2).count() == 2000


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "id",
            "r-" + "9" * 120,
            "with a reward ID of 122 characters; the mirror holds at most 100",
        ),
        (
            "recipient_email",
            "a" * 250 + "@example.com",
            "with a recipient email of 262 characters; the mirror holds at most 254",
        ),
    ],
)
def test_a_value_longer_than_its_column_is_refused_naming_the_reward_and_field(
    campaign, field, value, message
):
    long = _record(2)._replace(**{field: value})

    with pytest.raises(MirrorRefused, match=message) as refused:
        mirror_records_save(
            campaign_id=campaign.pk, records=[_record(1), long, _record(3)], seen_at=timezone.now()
        )

    assert f"reward {long.id[:40]!r}" in str(refused.value)
    assert not MirroredReward.objects.exists()  # nothing of the batch was written


def test_a_stream_that_fails_midway_keeps_the_batches_already_written(campaign):
    pulled = []

    def stream():
        for n in range(10):
            pulled.append(n)
            yield _record(n)
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        mirror_records_save(
            campaign_id=campaign.pk, records=stream(), seen_at=timezone.now(), batch_size=4
        )
    # Two whole batches were written as they came; the third was cut short.
    assert MirroredReward.objects.count() == 8
    assert len(pulled) == 10


# --- Over HTTP, from the sandbox ------------------------------------------------------------


def test_a_month_sync_mirrors_new_rewards_and_the_summary(sandbox):
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY, MAY + dt.timedelta(hours=1), trees=3)
    sandbox_rewards_add("c-1", JUNE)

    run = rewards_sync_month(campaign=campaign, year=2026, month=5)

    assert run.outcome == SyncRun.Outcome.SUCCEEDED, run.error
    assert (run.rewards_read, run.created, run.changed, run.flagged_missing) == (2, 2, 0, 0)
    assert run.finished_at is not None
    mirrored = MirroredReward.objects.filter(campaign=campaign)
    assert mirrored.count() == 2
    assert set(mirrored.values_list("tree_count", flat=True)) == {3}
    summary = MonthlySummary.objects.get(campaign=campaign, year=2026, month=5)
    assert (summary.reward_count, summary.tree_count) == (2, 6)


def test_a_second_sync_changes_nothing(sandbox):
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY, MAY, MAY)
    rewards_sync_month(campaign=campaign, year=2026, month=5)
    before = {r.remote_id: (r.date, r.first_seen_at) for r in MirroredReward.objects.all()}

    run = rewards_sync_month(campaign=campaign, year=2026, month=5)

    assert (run.outcome, run.rewards_read, run.created, run.changed) == ("succeeded", 3, 0, 0)
    after = {r.remote_id: (r.date, r.first_seen_at) for r in MirroredReward.objects.all()}
    assert after == before


def test_a_first_sync_writes_each_row_once_with_no_pass_for_what_is_missing(sandbox):
    # Into an empty mirror nothing can be missing: the flagging pass (and, on PostgreSQL,
    # keeping every ID seen for it) would only cost time. A second sync still makes it.
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY, MAY, JUNE)

    with CaptureQueriesContext(connection) as first:
        run = rewards_sync_all(campaign=campaign)

    assert (run.outcome, run.created, run.flagged_missing) == ("succeeded", 3, 0)
    statements = [q["sql"].strip() for q in first.captured_queries]
    assert not [sql for sql in statements if "missing_since" in sql and sql.startswith("UPDATE")]
    assert not [sql for sql in statements if "mirror_sync_seen" in sql and "INSERT" in sql]
    # Each row written once, by this sync, and seen by it.
    assert {(r.first_seen_at == r.last_seen_at) for r in MirroredReward.objects.all()} == {True}

    with CaptureQueriesContext(connection) as again:
        rewards_sync_all(campaign=campaign)
    flagging = [
        q
        for q in again.captured_queries
        if q["sql"].strip().startswith("UPDATE") and "missing_since" in q["sql"]
    ]
    assert flagging


def test_a_reward_removed_from_the_sandbox_is_flagged_not_deleted_and_unflagged_on_return(
    sandbox,
):
    campaign = sandbox.campaign("c-1", "pass-1")
    kept, gone = sandbox_rewards_add("c-1", MAY, MAY + dt.timedelta(days=1))
    sandbox_rewards_add("c-1", JUNE)
    rewards_sync_all(campaign=campaign)
    gone_fields = {f.name: getattr(gone, f.name) for f in SandboxReward._meta.concrete_fields}
    gone.delete()

    run = rewards_sync_month(campaign=campaign, year=2026, month=5)

    assert run.flagged_missing == 1
    flagged = MirroredReward.objects.get(remote_id=gone.remote_id)
    assert flagged.missing_since is not None
    assert MirroredReward.objects.get(remote_id=kept.remote_id).missing_since is None
    # A month sync flags only its own month: June was not asked about.
    assert MirroredReward.objects.filter(missing_since__isnull=False).count() == 1

    SandboxReward.objects.create(**gone_fields)
    back = rewards_sync_month(campaign=campaign, year=2026, month=5)
    assert back.changed == 1
    assert MirroredReward.objects.get(remote_id=gone.remote_id).missing_since is None


def test_a_reward_we_sent_that_mokugift_stops_listing_counts_as_not_in_mokugift(sandbox, manager):
    campaign = sandbox.campaign("c-1", "pass-1")
    kept, gone = sandbox_rewards_add("c-1", MAY, MAY + dt.timedelta(hours=1))
    for reward in (kept, gone):
        send_add(campaign, remote_id=reward.remote_id, sent_at=reward.created, by=manager)
    rewards_sync_month(campaign=campaign, year=2026, month=5)
    assert list(ledger_not_in_mokugift(year=2026)) == []

    gone.delete()
    rewards_sync_month(campaign=campaign, year=2026, month=5)

    assert [s.remote_id for s in ledger_not_in_mokugift(year=2026)] == [gone.remote_id]
    may = report_for_year(year=2026).months[4]
    assert (may.ours_rewards, may.ledger_not_in_mokugift) == (2, 1)


def test_an_all_sync_computes_month_summaries_from_the_mirror(sandbox):
    campaign = sandbox.campaign("c-1", "pass-1", trees_per_reward=1)
    sandbox_rewards_add("c-1", MAY, MAY, trees=2)
    sandbox_rewards_add("c-1", JUNE, trees=4)

    run = rewards_sync_all(campaign=campaign)

    assert (run.outcome, run.year, run.month, run.created) == ("succeeded", None, None, 3)
    summaries = {
        (s.year, s.month): (s.reward_count, s.tree_count)
        for s in MonthlySummary.objects.filter(campaign=campaign)
    }
    assert summaries == {(2026, 5): (2, 4), (2026, 6): (1, 4)}


def test_month_summaries_count_months_in_utc_whatever_the_pages_zone(campaign, settings):
    # 23:30 UTC on 31 May is already June in Tokyo: Mokugift counts it in May.
    settings.TIME_ZONE = "Asia/Tokyo"
    late_may = dt.datetime(2026, 5, 31, 23, 30, tzinfo=dt.UTC)
    mirror_records_save(
        campaign_id=campaign.pk,
        records=[_record(1, late_may, trees=3), _record(2, JUNE)],
        seen_at=timezone.now(),
    )

    monthly_summaries_from_mirror(campaign_id=campaign.pk, synced_at=timezone.now())

    summaries = {
        (s.year, s.month): (s.reward_count, s.tree_count)
        for s in MonthlySummary.objects.filter(campaign=campaign)
    }
    assert summaries == {(2026, 5): (1, 3), (2026, 6): (1, 1)}


def test_the_sync_links_mirrored_rewards_to_our_ledger_rows(sandbox, manager):
    campaign = sandbox.campaign("c-1", "pass-1")
    ours, theirs = sandbox_rewards_add("c-1", MAY, MAY)
    send = send_add(campaign, remote_id=ours.remote_id, sent_at=MAY, by=manager, name="Ann")

    rewards_sync_month(campaign=campaign, year=2026, month=5)

    assert MirroredReward.objects.get(remote_id=ours.remote_id).send_id == send.pk
    assert MirroredReward.objects.get(remote_id=theirs.remote_id).send_id is None


def test_a_sync_the_api_refuses_is_recorded_as_failed_and_flags_nothing_missing(sandbox):
    # The sandbox's faults hit create calls only, and query calls carry no passcode: the honest
    # way for a query to fail is Mokugift refusing it, here 101 for a campaign it no longer knows.
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY)
    assert rewards_sync_all(campaign=campaign).outcome == SyncRun.Outcome.SUCCEEDED
    SandboxCampaign.objects.filter(campaign_id="c-1").delete()

    run = rewards_sync_all(campaign=campaign)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert run.error == "ApiError: Mokugift error 101 on all_rewards/c-1: Invalid campaign ID"
    assert run.finished_at is not None
    # A refused answer is not an empty list: what was mirrored is not flagged as gone.
    assert MirroredReward.objects.get().missing_since is None


def test_the_answer_is_read_by_one_thread_from_its_first_byte(sandbox, monkeypatch):
    # lxml's parsers are not to be shared between threads: the sync's reader thread makes the
    # request and the parser, and feeds it to the end (the status too, not the caller first).
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY, JUNE)
    threads = []
    made, fed = _ResultParser.__init__, _ResultParser.feed

    def init_spy(parser, call):
        threads.append(("made", threading.get_ident()))
        made(parser, call)

    def feed_spy(parser, data):
        threads.append(("fed", threading.get_ident()))
        fed(parser, data)

    monkeypatch.setattr(_ResultParser, "__init__", init_spy)
    monkeypatch.setattr(_ResultParser, "feed", feed_spy)

    run = rewards_sync_all(campaign=campaign)

    assert (run.outcome, run.created) == ("succeeded", 2)
    assert threads[0][0] == "made" and len(threads) > 1
    assert {ident for _, ident in threads} == {threads[0][1]}
    assert threads[0][1] != threading.get_ident()


def test_an_unreachable_api_makes_a_failed_run_with_a_message(sandbox, settings):
    campaign = sandbox.campaign("c-1", "pass-1")
    settings.MOKUGIFT_SANDBOX_URL = "http://127.0.0.1:9/sandbox/api/"

    run = rewards_sync_month(campaign=campaign, year=2026, month=5)

    assert run.outcome == SyncRun.Outcome.FAILED
    assert run.error
    assert "pass-1" not in run.error


def test_a_passcode_no_key_can_read_makes_a_failed_run_naming_the_setting(sandbox, settings):
    campaign = sandbox.campaign("c-1", "pass-1")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    sync_campaign_month(campaign.pk, 2026, 5)

    run = SyncRun.objects.get(campaign=campaign)
    assert run.outcome == SyncRun.Outcome.FAILED
    assert "FIELD_ENCRYPTION_KEYS" in run.error


def test_two_syncs_of_one_period_started_at_once_do_not_collide(sandbox):
    # The sandbox answers after 400 ms: the first run still holds the period when the
    # second one starts.
    campaign = sandbox.campaign("c-1", "pass-1", latency_ms=400)
    sandbox_rewards_add("c-1", *[MAY + dt.timedelta(minutes=n) for n in range(30)])
    barrier = threading.Barrier(2)
    runs: list[SyncRun] = []

    def one_sync():
        try:
            barrier.wait(timeout=10)
            runs.append(rewards_sync_month(campaign=campaign, year=2026, month=5))
        finally:
            connection.close()

    threads = [threading.Thread(target=one_sync) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(run.outcome for run in runs) == ["skipped", "succeeded"]
    assert MirroredReward.objects.filter(campaign=campaign).count() == 30
    # The period is free again: a third run does its work.
    assert rewards_sync_month(campaign=campaign, year=2026, month=5).outcome == "succeeded"


def test_a_month_sync_and_an_all_sync_may_run_side_by_side(sandbox):
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY)
    SyncRun.objects.create(campaign=campaign, year=None, month=None)  # an all-sync under way

    assert rewards_sync_month(campaign=campaign, year=2026, month=5).outcome == "succeeded"
    assert rewards_sync_all(campaign=campaign).outcome == "skipped"


def test_a_sync_notes_when_each_listed_reward_was_last_seen(sandbox, settings):
    settings.MIRROR_LAST_SEEN_RESOLUTION = 0
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY, MAY)
    rewards_sync_month(campaign=campaign, year=2026, month=5)
    before = set(MirroredReward.objects.values_list("last_seen_at", flat=True))

    run = rewards_sync_month(campaign=campaign, year=2026, month=5)

    after = set(MirroredReward.objects.values_list("last_seen_at", flat=True))
    assert len(after) == 1 and after.pop() > max(before)
    assert run.changed == 0
