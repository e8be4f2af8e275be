"""The doors into the sync: the command, the tasks (called as functions) and the schedule."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from rewards.models import MirroredReward, SyncRun
from rewards.tasks.sync import recent_months, sync_campaign_all, sync_campaign_month
from tests.mirror.helpers import sandbox_rewards_add

MAY = dt.datetime(2026, 5, 10, 12, 0, tzinfo=dt.UTC)


def test_sync_rewards_wait_runs_the_sync_and_prints_the_counts(sandbox):
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY, MAY)
    out = StringIO()

    call_command(
        "sync_rewards",
        "--campaign",
        "c-1",  # Mokugift's campaign ID, as send_rewards takes it (our number works too)
        "--month",
        5,
        "--year",
        2026,
        "--wait",
        stdout=out,
    )

    assert "succeeded, read 2, created 2, changed 0, flagged missing 0" in out.getvalue()
    assert "pass-1" not in out.getvalue()
    assert MirroredReward.objects.filter(campaign=campaign).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--all", "--month", "5", "--year", "2026"],
        ["--month", "5"],
        ["--month", "13", "--year", "2026"],
    ],
)
def test_sync_rewards_refuses_a_period_that_is_not_one(args):
    with pytest.raises(CommandError):
        call_command("sync_rewards", *args)


@pytest.mark.django_db
@pytest.mark.parametrize("ref", ["nope", "\u00b2", "1" * 5000])
def test_a_campaign_no_id_or_number_names_is_a_clear_error(ref):
    # "²" passes str.isdigit() and 5,000 digits are more than int() reads: neither may crash.
    with pytest.raises(CommandError, match="No campaign with the Mokugift ID"):
        call_command("sync_rewards", "--campaign", ref, "--all")


def test_the_tasks_sync_by_campaign_id_and_skip_a_disabled_campaign(sandbox):
    campaign = sandbox.campaign("c-1", "pass-1")
    sandbox_rewards_add("c-1", MAY)

    sync_campaign_month(campaign.pk, 2026, 5)
    assert MirroredReward.objects.filter(campaign=campaign).count() == 1

    campaign.enabled = False
    campaign.save(update_fields=["enabled"])
    sync_campaign_all(campaign.pk)
    sync_campaign_all(campaign.pk + 1000)  # gone: returns quietly
    assert SyncRun.objects.filter(month__isnull=True).count() == 0


def test_recent_months_are_this_month_and_the_one_before_across_a_new_year():
    assert recent_months(now=dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)) == [
        (2026, 1),
        (2025, 12),
    ]
    assert recent_months(now=dt.datetime(2026, 3, 31, 23, 59, tzinfo=dt.UTC)) == [
        (2026, 3),
        (2026, 2),
    ]


def test_the_beat_schedule_holds_the_two_sync_entries(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"rewards.sync_recent", "rewards.sync_everything"} <= tasks


def test_export_rewards_writes_the_file_the_page_downloads(client, manager, campaign, tmp_path):
    from django.urls import reverse
    from openpyxl import load_workbook

    from tests.mirror.helpers import mirror_add

    mirror_add(campaign, MAY, recipient_email="=cmd|' /C calc'!A0")
    mirror_add(campaign, MAY + dt.timedelta(days=40))
    target = tmp_path / "may.csv"

    call_command("export_rewards", "--campaign", campaign.pk, "--month", 5, "--year", 2026,
                 "--output", str(target))  # fmt: skip

    client.force_login(manager)
    page = client.get(reverse("rewards:list_csv"), {"campaign": campaign.pk, "month": "2026-05"})
    assert target.read_bytes() == b"".join(page.streaming_content)
    assert "'=cmd|" in target.read_text()

    xlsx = tmp_path / "all.xlsx"
    call_command("export_rewards", "--format", "xlsx", "--output", str(xlsx))
    rows = list(load_workbook(xlsx)["Rewards"].values)
    assert len(rows) == 3 and rows[2][3] == "'=cmd|' /C calc'!A0"

    report = tmp_path / "report.xlsx"
    call_command("export_rewards", "--report", "--year", 2026, "--format", "xlsx", "--output",
                 str(report))  # fmt: skip
    assert load_workbook(report).sheetnames[0] == "2026 by month"


@pytest.mark.django_db
def test_export_rewards_refuses_half_a_period():
    with pytest.raises(CommandError):
        call_command("export_rewards", "--month", 5)


def test_sync_rewards_without_wait_queues_one_sync_per_enabled_campaign(
    campaign, other_campaign, django_capture_on_commit_callbacks
):
    other_campaign.enabled = False
    other_campaign.save(update_fields=["enabled"])
    out = StringIO()

    with django_capture_on_commit_callbacks() as callbacks:
        call_command("sync_rewards", "--all", stdout=out)

    assert "Queued a sync of everything for 1 campaign(s)." in out.getvalue()
    assert [callback.keywords["args"] for callback in callbacks] == [[campaign.pk]]
    assert SyncRun.objects.count() == 0  # nothing ran here: the worker will
