"""A Mokugift slow to commit: absence proves nothing inside the commit horizon, and a reward
that comes later still is found (the row's own) or flagged (paid twice), never hidden.

The sandbox's `commit-late` fault holds a create call, makes its rewards only after the delay
(the client has given up by then), and answers queries at once without them: the case that
paid twice before the horizon existed. The task bodies run in this process, over real HTTP;
the last test runs a real worker.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.services import campaign_create
from rewards.models import Batch, Send, SendEvent
from rewards.selectors.mirror import report_for_year
from rewards.selectors.sending import batch_counts, batch_unknown_summary, sends_paid_twice
from rewards.services.chunk import batch_send_chunk
from rewards.services.export import report_csv
from rewards.services.reconcile import campaign_reconcile, campaigns_to_reconcile
from rewards.services.sending import RecipientRow, batch_create
from sandbox.models import SandboxReward
from sandbox.services import sandbox_campaign_save
from tests.worker import wait_for

PASSCODE = "h0rizon-Passcode-secret"
DELAY = 3.0


@pytest.fixture
def slow_commit(settings):
    settings.MOKUGIFT_CHUNK_SIZE = 4
    settings.MOKUGIFT_READ_TIMEOUT = 1
    settings.MOKUGIFT_RECONCILE_SETTLE = 0
    settings.MOKUGIFT_RETRY_BACKOFF = 0
    settings.MOKUGIFT_CLOCK_SKEW = 2
    settings.MOKUGIFT_LATE_WATCH_INTERVAL = 0
    # The timeouts here are the point, not a misbehaving endpoint to wait out.
    settings.MOKUGIFT_CAMPAIGN_BACKOFF = 0
    # Longer than the sandbox takes to commit: Mokugift keeps its promise.
    settings.MOKUGIFT_COMMIT_HORIZON = 30
    return settings


def rows(n: int, prefix: str = "p") -> list[RecipientRow]:
    return [RecipientRow(row_number=i + 2, recipient=f"{prefix}{i}@example.com") for i in range(n)]


def rewards_per_recipient(campaign_id: str) -> Counter:
    return Counter(
        SandboxReward.objects.filter(campaign__campaign_id=campaign_id).values_list(
            "recipient_email", flat=True
        )
    )


def made(campaign_id: str, n: int) -> None:
    """Wait until the sandbox has committed n rewards of the campaign (after the delay)."""
    wait_for(
        lambda: SandboxReward.objects.filter(campaign__campaign_id=campaign_id).count() >= n,
        timeout=DELAY + 10,
        message=f"the sandbox never made {n} rewards",
    )


def test_a_row_not_listed_inside_the_commit_horizon_stays_unknown_and_is_found_later(
    sandbox, slow_commit, isolated_broker
):
    campaign = sandbox.campaign(
        campaign_id="late-1", passcode=PASSCODE, fault="commit-late", fault_delay=DELAY
    )
    batch = batch_create(campaign=campaign, mode="email", rows=rows(3), source="csv")
    batch_send_chunk(batch_id=batch.pk)
    assert batch_counts(batch=batch)["unknown"] == 3
    # Queries while Mokugift is still working list nothing: that proves nothing.
    for _ in range(3):
        report = campaign_reconcile(campaign_pk=campaign.pk)
        assert report.pending == 3 and report.absent == 0
    assert batch_counts(batch=batch)["unknown"] == 3
    attempt = Send.objects.filter(batch=batch).order_by("pk").first().attempt_started_at
    assert report.next_decisive_at == attempt + timedelta(seconds=30)

    made("late-1", 3)
    report = campaign_reconcile(campaign_pk=campaign.pk)
    assert report.found == 3
    assert batch_counts(batch=batch)["sent"] == 3
    assert rewards_per_recipient("late-1") == {f"p{i}@example.com": 1 for i in range(3)}


def test_a_row_is_proven_absent_only_by_a_query_begun_after_its_attempt_and_the_horizon(
    sandbox, slow_commit, isolated_broker
):
    slow_commit.MOKUGIFT_COMMIT_HORIZON = 2
    campaign = sandbox.campaign(
        campaign_id="absent-1", passcode=PASSCODE, fault="drop-before", fault_rate=1.0
    )
    batch = batch_create(campaign=campaign, mode="email", rows=rows(1), source="single")
    batch_send_chunk(batch_id=batch.pk)
    row = batch.sends.get()
    assert row.state == "unknown"
    assert campaign_reconcile(campaign_pk=campaign.pk).pending == 1
    row.refresh_from_db()
    assert row.state == "unknown" and row.absent_at is None

    time.sleep(
        max(0.0, (row.attempt_started_at + timedelta(seconds=2.1) - timezone.now()).total_seconds())
    )
    assert campaign_reconcile(campaign_pk=campaign.pk).absent == 1
    row.refresh_from_db()
    assert row.state == "waiting" and row.absent_at is not None
    assert SandboxReward.objects.count() == 0


def _paid_twice_setup(sandbox, settings, campaign_id: str):
    """A Mokugift that breaks its promise: it commits after the horizon. The row is proven
    absent, sent again (fault off), and then the first reward arrives."""
    settings.MOKUGIFT_COMMIT_HORIZON = 1.5
    campaign = sandbox.campaign(
        campaign_id=campaign_id, passcode=PASSCODE, fault="commit-late", fault_delay=DELAY
    )
    batch = batch_create(campaign=campaign, mode="email", rows=rows(1), source="single")
    batch_send_chunk(batch_id=batch.pk)
    row = batch.sends.get()
    assert row.state == "unknown"
    wait_for(
        lambda: campaign_reconcile(campaign_pk=campaign.pk).absent == 1,
        timeout=5,
        message="never proven absent after the horizon",
    )
    row.refresh_from_db()
    assert row.state == "waiting"
    return campaign, batch, row


def test_a_late_reward_for_a_row_sent_again_is_paid_twice_on_the_row_the_batch_and_report(
    sandbox, settings, slow_commit, isolated_broker, client, admin_user
):
    campaign, batch, row = _paid_twice_setup(sandbox, settings, "twice-1")
    sandbox_campaign_save(campaign_id="twice-1", fault="none")
    Send.objects.filter(pk=row.pk).update(next_attempt_at=None)
    batch_send_chunk(batch_id=batch.pk)
    row.refresh_from_db()
    assert row.state == "sent"
    second = row.remote_id

    made("twice-1", 2)
    report = campaign_reconcile(campaign_pk=campaign.pk)
    assert report.paid_twice == 1
    row.refresh_from_db()
    late = SandboxReward.objects.exclude(remote_id=second).get().remote_id
    assert (row.state, row.remote_id, row.duplicate_remote_id) == ("sent", second, late)
    assert row.paid_twice_at is not None
    assert SendEvent.objects.filter(send=row, note__startswith="PAID TWICE").exists()
    # Flagged once, however often it is looked at again.
    assert campaign_reconcile(campaign_pk=campaign.pk).paid_twice == 0
    assert list(sends_paid_twice(batch=batch)) == [row]

    year_report = report_for_year(year=row.sent_at.year)
    assert year_report.months[row.sent_at.month - 1].paid_twice == 1
    assert year_report.totals.paid_twice == 1
    assert year_report.months[row.sent_at.month - 1].disagrees
    table = list(
        csv.DictReader(io.StringIO("".join(report_csv(report=year_report)).lstrip("\ufeff")))
    )
    assert table[row.sent_at.month - 1]["paid_twice"] == "1"
    assert table[-1]["month"] == "Total" and table[-1]["paid_twice"] == "1"

    client.force_login(admin_user)
    page = client.get(f"/rewards/batches/{batch.pk}/").content.decode()
    assert "paid-twice-banner" in page and late in page and second in page
    assert late in client.get("/rewards/batches/paid-twice/").content.decode()
    assert "paid-twice-banner" in client.get("/rewards/batches/").content.decode()
    assert "paid-twice-banner" in client.get("/").content.decode()
    assert ">1</a>" in client.get(f"/rewards/reports/?year={row.sent_at.year}").content.decode()


def test_a_late_reward_for_a_row_waiting_for_its_retry_is_taken_and_not_sent_again(
    sandbox, settings, slow_commit, isolated_broker
):
    campaign, batch, row = _paid_twice_setup(sandbox, settings, "late-wait")
    made("late-wait", 1)
    report = campaign_reconcile(campaign_pk=campaign.pk)
    assert report.late == 1 and report.paid_twice == 0
    row.refresh_from_db()
    assert row.state == "sent" and row.remote_id == SandboxReward.objects.get().remote_id
    sandbox_campaign_save(campaign_id="late-wait", fault="none")
    batch_send_chunk(batch_id=batch.pk)
    assert rewards_per_recipient("late-wait") == {"p0@example.com": 1}
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE


def test_a_late_reward_for_a_row_given_up_and_sent_again_in_a_new_batch_pays_both_rows(
    sandbox, settings, slow_commit, isolated_broker
):
    settings.MOKUGIFT_MAX_ATTEMPTS = 1
    settings.MOKUGIFT_COMMIT_HORIZON = 1.5
    campaign = sandbox.campaign(
        campaign_id="twice-2", passcode=PASSCODE, fault="commit-late", fault_delay=DELAY
    )
    first = batch_create(campaign=campaign, mode="email", rows=rows(1), source="single")
    batch_send_chunk(batch_id=first.pk)
    wait_for(
        lambda: campaign_reconcile(campaign_pk=campaign.pk).failed == 1,
        timeout=5,
        message="never given up after the horizon",
    )
    row = first.sends.get()
    assert row.state == "failed"
    # Someone reads "failed" and sends the recipient a reward again.
    sandbox_campaign_save(campaign_id="twice-2", fault="none")
    again = batch_create(campaign=campaign, mode="email", rows=rows(1), source="single")
    batch_send_chunk(batch_id=again.pk)
    other = again.sends.get()
    assert other.state == "sent"

    made("twice-2", 2)
    report = campaign_reconcile(campaign_pk=campaign.pk)
    assert report.late == 1 and report.paid_twice == 2
    row.refresh_from_db()
    other.refresh_from_db()
    assert row.state == "sent" and row.paid_twice_at and other.paid_twice_at
    assert row.duplicate_remote_id == other.remote_id
    assert other.duplicate_remote_id == row.remote_id
    assert set(sends_paid_twice()) == {row, other}


def test_campaigns_with_rows_proven_absent_are_watched_for_a_day(db, isolated_broker):
    campaign = campaign_create(
        actor=None, name="Watch", campaign_id="watch-1", environment="sandbox", passcode="p-1"
    )
    batch = batch_create(campaign=campaign, mode="email", rows=rows(2), source="csv")
    now = timezone.now()
    Send.objects.filter(batch=batch, row_number=2).update(
        state="waiting", absent_at=now - timedelta(hours=2)
    )
    assert campaigns_to_reconcile(now=now) == [campaign.pk]
    assert campaigns_to_reconcile(now=now + timedelta(days=1)) == []
    Send.objects.filter(batch=batch, row_number=2).update(paid_twice_at=now)
    assert campaigns_to_reconcile(now=now) == []


def test_the_batch_page_says_when_unknown_rows_are_decided_and_lets_people_act(
    sandbox, slow_commit, isolated_broker, client, marketer
):
    campaign = sandbox.campaign(
        campaign_id="act-1", passcode=PASSCODE, fault="drop-before", fault_rate=1.0
    )
    batch = batch_create(campaign=campaign, mode="email", rows=rows(4), source="csv")
    batch_send_chunk(batch_id=batch.pk)
    summary = batch_unknown_summary(batch=batch)
    assert summary.count == 4
    client.force_login(marketer)
    page = client.get(f"/rewards/batches/{batch.pk}/").content.decode()
    assert "4 rows of unknown outcome" in page
    assert f"{summary.first_decisive_at:%Y-%m-%d %H:%M}" in page

    # A reason is required.
    url = f"/rewards/batches/{batch.pk}/unknown/decide/"
    client.post(url, {"action": "failed", "rows": "2", "reason": ""})
    assert batch_counts(batch=batch)["unknown"] == 4

    client.post(url, {"action": "failed", "rows": "2, 3", "reason": "support says not made"})
    client.post(url, {"action": "sent", "rows": "4-5", "reason": "seen in their dashboard"})
    states = dict(batch.sends.values_list("row_number", "state"))
    assert states == {2: "failed", 3: "failed", 4: "sent", 5: "sent"}
    failed = SendEvent.objects.get(send__batch=batch, send__row_number=2, to_state="failed")
    assert failed.actor == marketer and "support says not made" in failed.note
    sent = SendEvent.objects.get(send__batch=batch, send__row_number=5, to_state="sent")
    assert sent.actor == marketer and "seen in their dashboard" in sent.note
    # Marked failed, it is still watched for a late reward.
    assert batch.sends.get(row_number=2).absent_at is not None
    batch.refresh_from_db()
    assert batch.state == Batch.State.DONE
    assert rewards_per_recipient("act-1") == {}


def test_check_again_now_reconciles_the_campaign_at_once(
    sandbox, slow_commit, isolated_broker, client, marketer, monkeypatch
):
    from rewards.services import enqueue

    campaign = sandbox.campaign(
        campaign_id="act-2", passcode=PASSCODE, fault="drop-after", fault_rate=1.0
    )
    batch = batch_create(campaign=campaign, mode="email", rows=rows(1), source="single")
    batch_send_chunk(batch_id=batch.pk)
    enqueued = []
    monkeypatch.setattr(enqueue, "reconcile_enqueue", lambda **kw: enqueued.append(kw))
    client.force_login(marketer)
    client.post(f"/rewards/batches/{batch.pk}/unknown/check/")
    assert enqueued == [{"campaign_pk": campaign.pk}]


@pytest.mark.worker
def test_a_worker_and_a_slow_committing_mokugift_make_exactly_one_reward_per_recipient(
    sandbox, celery_worker, settings
):
    settings.MOKUGIFT_CHUNK_SIZE = 4
    campaign = sandbox.campaign(
        campaign_id="w-late", passcode=PASSCODE, fault="commit-late", fault_delay=DELAY
    )
    worker = celery_worker(
        env_overrides={
            "MOKUGIFT_CHUNK_SIZE": "4",
            # The create's answer is given up after 1 s; Mokugift commits after 3 s.
            "MOKUGIFT_READ_TIMEOUT": "1",
            "MOKUGIFT_COMMIT_HORIZON": "20",
        }
    )
    n = 10
    batch = batch_create(campaign=campaign, mode="email", rows=rows(n, "w"), source="csv")
    wait_for(
        lambda: batch_counts(batch=batch)["sent"] == n,
        timeout=60,
        message=f"{batch_counts(batch=batch)}\n{worker.log()[-3000:]}",
    )
    # A create sent again would commit up to DELAY later: give it the time to show.
    time.sleep(DELAY + 0.5)
    assert rewards_per_recipient("w-late") == {f"w{i}@example.com": 1 for i in range(n)}
    assert SendEvent.objects.filter(send__batch=batch, to_state="unknown").count() == n
    wait_for(lambda: not Batch.objects.filter(pk=batch.pk, state="sending").exists(), timeout=10)
