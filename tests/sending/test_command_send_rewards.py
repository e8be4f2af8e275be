"""`manage.py send_rewards`: the same ledger and tasks as the web page, from a shell."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.models import Approval, Campaign
from campaigns.services import campaign_create
from rewards.models import Batch, Send
from rewards.services.controls import batch_approve, batch_decline
from rewards.services.sending import batch_cancel
from sandbox.models import SandboxReward

PASSCODE = "cmd-Passc0de"


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("send_rewards", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def campaign(db):
    return campaign_create(
        actor=None, name="Cmd", campaign_id="cmd-1", environment="sandbox", passcode=PASSCODE
    )


def test_it_refuses_a_csv_with_problems_and_lists_them(campaign, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email,name\nok@example.com,Ok\nnot-an-email,Bad\nok@example.com,Twice\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 problem"):
        call_command(
            "send_rewards",
            "--campaign=cmd-1",
            "--mode=email",
            f"--csv={path}",
            stdout=io.StringIO(),
            stderr=err,
        )
    assert "row 3, column email" in err.getvalue()
    assert "row 4" in err.getvalue()
    assert Batch.objects.count() == 0


def test_it_refuses_a_bad_recipient_and_an_unknown_campaign(campaign):
    with pytest.raises(CommandError, match="not a valid email"):
        run("--campaign=cmd-1", "--mode=email", "--to=nobody")
    with pytest.raises(CommandError, match="No campaign"):
        run("--campaign=nope", "--mode=email", "--to=a@example.com")
    assert Batch.objects.count() == 0


def test_it_queues_a_batch_by_our_campaign_number_without_waiting(
    campaign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        out, _ = run(f"--campaign={campaign.pk}", "--mode=link", "--to=a@example.com")
    batch = Batch.objects.get()
    assert f"Batch {batch.pk}" in out and batch.source == Batch.Source.COMMAND
    assert len(callbacks) == 1


@pytest.mark.worker
def test_it_sends_one_reward_and_waits_for_it(sandbox, celery_worker):
    sandbox.campaign(campaign_id="cmd-2", passcode=PASSCODE)
    celery_worker()
    out, _ = run(
        "--campaign=cmd-2", "--mode=link", "--to=sally@example.com", "--name=Sally", "--wait"
    )
    assert "all 1 sent" in out
    assert SandboxReward.objects.get().recipient_email == "sally@example.com"


@pytest.mark.worker
def test_it_sends_a_csv_through_faults_and_exits_0_only_when_all_are_sent(
    sandbox, celery_worker, tmp_path, settings
):
    settings.MOKUGIFT_CHUNK_SIZE = 5
    sandbox.campaign(campaign_id="cmd-3", passcode=PASSCODE, fault="drop-after", fault_rate=0.5)
    celery_worker(env_overrides={"MOKUGIFT_CHUNK_SIZE": "5"})
    path = tmp_path / "list.csv"
    path.write_text("email\n" + "".join(f"c{i}@example.com\n" for i in range(20)))
    out, _ = run("--campaign=cmd-3", "--mode=email", f"--csv={path}", "--wait", "--timeout=90")
    assert "all 20 sent" in out and "100 %" in out
    assert set(
        Counter(SandboxReward.objects.values_list("recipient_email", flat=True)).values()
    ) == {1}
    assert SandboxReward.objects.count() == 20

    # A campaign Mokugift has disabled: the rows fail, and the command says so with exit 1.
    from sandbox.services import sandbox_campaign_save

    sandbox_campaign_save(campaign_id="cmd-3", enabled=False, fault="none")
    err = io.StringIO()
    with pytest.raises(CommandError, match="did not end sent"):
        call_command(
            "send_rewards",
            "--campaign=cmd-3",
            "--mode=email",
            "--to=late@example.com",
            "--wait",
            "--timeout=60",
            stdout=io.StringIO(),
            stderr=err,
        )
    assert "disabled" in err.getvalue()


def test_it_exits_1_saying_so_when_the_batch_pauses_for_moku_coins(
    sandbox, celery_worker, tmp_path, settings
):
    settings.MOKUGIFT_CHUNK_SIZE = 2
    sandbox.campaign(campaign_id="cmd-4", passcode=PASSCODE, coins=3)
    celery_worker(env_overrides={"MOKUGIFT_CHUNK_SIZE": "2"})
    path = tmp_path / "list.csv"
    path.write_text("email\n" + "".join(f"d{i}@example.com\n" for i in range(6)))
    with pytest.raises(CommandError, match=r"is paused: Paused: .*no moku-coins"):
        run("--campaign=cmd-4", "--mode=email", f"--csv={path}", "--wait", "--timeout=60")
    assert SandboxReward.objects.count() == 3


# --- The spending controls: --at, approval, budgets -------------------------------------------


def next_year_at(month: int, day: int, hour: int, zone: str) -> int:
    """The year of the next `month`/`day` at `hour` in `zone` still ahead (by a minute, the
    test's own time): within the year a send may be scheduled ahead
    (rewards.services.controls.SCHEDULE_DAYS_AHEAD), whatever the day the tests run."""
    now = timezone.now()
    this_year = datetime(now.year, month, day, hour, tzinfo=ZoneInfo(zone))
    return now.year if this_year > now + timedelta(minutes=1) else now.year + 1


XMAS = next_year_at(12, 24, 9, "Europe/Berlin")  # CET, UTC+1
JULY = next_year_at(7, 1, 9, "America/New_York")  # EDT, UTC-4


def recipients_csv(tmp_path, n: int, prefix: str = "r"):
    path = tmp_path / f"{prefix}.csv"
    path.write_text("email\n" + "".join(f"{prefix}{i}@example.com\n" for i in range(n)))
    return path


def test_at_schedules_the_batch_in_the_zone_given(campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        out, _ = run(
            "--campaign=cmd-1",
            "--mode=email",
            "--to=a@example.com",
            f"--at={XMAS}-12-24 09:00",
            "--tz=Europe/Berlin",
        )
    batch = Batch.objects.get()
    assert batch.state == Batch.State.SCHEDULED
    assert batch.send_at == datetime(XMAS, 12, 24, 8, 0, tzinfo=UTC)
    assert f"starts at {XMAS}-12-24 09:00 CET (Europe/Berlin)" in out


def test_at_is_read_in_time_zone_by_default(campaign, settings, django_capture_on_commit_callbacks):
    settings.TIME_ZONE = "America/New_York"
    with django_capture_on_commit_callbacks(execute=False):
        run("--campaign=cmd-1", "--mode=email", "--to=a@example.com", f"--at={JULY}-07-01 09:00")
    assert Batch.objects.get().send_at == datetime(JULY, 7, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--at=2020-01-01 09:00"], r"--at: 2020-01-01 09:00 UTC \(UTC\) is in the past"),
        (["--at=2030-01-01 09:00", "--tz=Mars/Olympus"], r"--tz: unknown time zone 'Mars/Olympus'"),
        (["--at=3026-12-24 09:00"], r"^At most a year ahead\.$"),
        (["--at=Christmas"], r"--at: 'Christmas' is not a date and time"),
        (["--tz=Europe/Berlin"], r"--tz is the time zone of --at: give --at too"),
    ],
)
def test_it_refuses_a_past_time_an_unknown_zone_and_nonsense(campaign, args, words):
    with pytest.raises(CommandError, match=words):
        run("--campaign=cmd-1", "--mode=email", "--to=a@example.com", *args)
    assert Batch.objects.count() == 0


def test_it_refuses_a_batch_over_the_monthly_budget_with_the_numbers(campaign, tmp_path):
    Campaign.objects.filter(pk=campaign.pk).update(monthly_budget=2)
    with pytest.raises(
        CommandError,
        match=r"Over the monthly budget of Cmd: 0 of 2 used this month; this batch needs 3\. "
        "Nothing was sent",
    ):
        run("--campaign=cmd-1", "--mode=email", f"--csv={recipients_csv(tmp_path, 3)}")
    assert Batch.objects.count() == 0


def test_it_says_that_a_batch_awaits_approval(campaign, django_capture_on_commit_callbacks):
    Campaign.objects.filter(pk=campaign.pk).update(approval=Approval.ALWAYS)
    with django_capture_on_commit_callbacks(execute=False):
        out, _ = run("--campaign=cmd-1", "--mode=email", "--to=a@example.com")
    batch = Batch.objects.get()
    assert batch.state == Batch.State.AWAITING_APPROVAL
    assert f"Batch {batch.pk} awaits approval by a Manager or Admin of Cmd" in out


@pytest.fixture
def decided_while_waiting(monkeypatch):
    """What a second person does while the command waits: `decide(batch)` runs at the
    command's first pause between two looks at the database, then pauses are short."""
    from rewards.management.commands import send_rewards

    real_sleep = send_rewards.time.sleep
    decisions = []

    def install(decide):
        def sleep(seconds):
            if not decisions:
                decisions.append(decide(Batch.objects.get()))
            else:
                real_sleep(0.05)

        monkeypatch.setattr(send_rewards.time, "sleep", sleep)

    return install


def test_wait_ends_with_the_reason_when_the_batch_is_declined(
    campaign, manager, decided_while_waiting, django_capture_on_commit_callbacks
):
    Campaign.objects.filter(pk=campaign.pk).update(approval=Approval.ALWAYS)
    decided_while_waiting(
        lambda batch: batch_decline(batch=batch, actor=manager, reason="Not before the board.")
    )
    with (
        django_capture_on_commit_callbacks(execute=False),
        pytest.raises(
            CommandError, match=r"was declined by mona-manager: Not before the board\. Nothing"
        ),
    ):
        run("--campaign=cmd-1", "--mode=email", "--to=a@example.com", "--wait")
    assert set(Send.objects.values_list("state", flat=True)) == {Send.State.CANCELLED}


def test_wait_says_when_an_approved_batch_starts_and_waits_for_its_time(
    campaign, manager, decided_while_waiting, django_capture_on_commit_callbacks
):
    Campaign.objects.filter(pk=campaign.pk).update(approval=Approval.ALWAYS)
    decided_while_waiting(lambda batch: batch_approve(batch=batch, actor=manager))
    with (
        django_capture_on_commit_callbacks(execute=False),
        pytest.raises(CommandError, match=r"had not started \(it is scheduled\)"),
    ):
        call_command(
            "send_rewards",
            "--campaign=cmd-1",
            "--mode=email",
            "--to=a@example.com",
            f"--at={XMAS}-12-24 09:00",
            "--tz=Europe/Berlin",
            "--wait",
            "--timeout=0.5",
            stdout=(out := io.StringIO()),
            stderr=io.StringIO(),
        )
    assert f"approved by mona-manager: it starts at {XMAS}-12-24 09:00 CET" in out.getvalue()
    assert Batch.objects.get().state == Batch.State.SCHEDULED


def test_wait_ends_when_the_batch_is_withdrawn_before_it_starts(
    campaign, decided_while_waiting, django_capture_on_commit_callbacks
):
    decided_while_waiting(lambda batch: batch_cancel(batch=batch, actor=None))
    with (
        django_capture_on_commit_callbacks(execute=False),
        pytest.raises(CommandError, match="was cancelled before it started"),
    ):
        run(
            "--campaign=cmd-1",
            "--mode=email",
            "--to=a@example.com",
            f"--at={XMAS}-12-24 09:00",
            "--tz=Europe/Berlin",
            "--wait",
        )


@pytest.mark.worker
def test_wait_follows_a_batch_approved_while_it_waits_until_all_are_sent(
    sandbox, celery_worker, manager, decided_while_waiting
):
    campaign = sandbox.campaign(campaign_id="cmd-5", passcode=PASSCODE)
    Campaign.objects.filter(pk=campaign.pk).update(approval=Approval.ALWAYS)
    celery_worker()
    decided_while_waiting(lambda batch: batch_approve(batch=batch, actor=manager))
    out, _ = run(
        "--campaign=cmd-5", "--mode=link", "--to=sally@example.com", "--wait", "--timeout=60"
    )
    assert "awaits approval" in out and "approved by mona-manager" in out
    assert "all 1 sent" in out
    assert SandboxReward.objects.get().recipient_email == "sally@example.com"


@pytest.mark.worker
def test_wait_waits_for_a_scheduled_batch_to_start_then_follows_it(sandbox, celery_worker):
    sandbox.campaign(campaign_id="cmd-6", passcode=PASSCODE)
    celery_worker()
    at = timezone.now() + timedelta(seconds=4)
    out, _ = run(
        "--campaign=cmd-6",
        "--mode=link",
        "--to=sally@example.com",
        f"--at={at:%Y-%m-%d %H:%M:%S}",
        "--tz=UTC",
        "--wait",
        "--timeout=60",
    )
    assert "is scheduled: it starts at" in out and "all 1 sent" in out
    reward = SandboxReward.objects.get()
    assert reward.created >= at.replace(microsecond=0)


# --- Any file a spreadsheet saves (recipient_files, as the send page) ---------------------

FILES = Path(__file__).parent / "files"


@pytest.mark.parametrize(
    ("filename", "read_as"),
    [
        ("people-windows-1252-semicolons.csv", "Read as Windows-1252, separated by semicolons"),
        ("people-utf-16-tabs.txt", "Read as UTF-16, separated by tabs"),
    ],
)
def test_it_reads_a_csv_as_a_spreadsheet_saves_it_and_says_how(campaign, filename, read_as):
    out, _err = run("--campaign=cmd-1", "--mode=email", f"--csv={FILES / filename}")
    assert f"{filename}: {read_as}." in out
    batch = Batch.objects.get()
    assert list(batch.sends.order_by("row_number").values_list("name", flat=True)) == [
        "Zoë Müller",
        "François Lefèvre",
        "José Ñúñez",
        'Ana "Nana" Sørensen; Jr',
    ]


def test_it_reads_the_sheet_of_a_workbook_it_is_given(campaign):
    out, _err = run(
        "--campaign=cmd-1", "--mode=link-id", f"--csv={FILES / 'workbook.xlsx'}", "--sheet=Link IDs"
    )
    assert "the sheet “Link IDs” (one of 2)" in out
    assert list(Batch.objects.get().sends.values_list("recipient", flat=True)) == [
        "1234",
        "9876543210",
    ]


def test_it_refuses_a_workbook_row_problem_and_a_sheet_that_is_not_there(campaign, tmp_path):
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 problem"):
        call_command(
            "send_rewards",
            "--campaign=cmd-1",
            "--mode=email",
            f"--csv={FILES / 'workbook.xlsx'}",
            stdout=io.StringIO(),
            stderr=err,
        )
    assert "row 3, column E-mail: This cell holds a date (2026-03-14)" in err.getvalue()
    with pytest.raises(CommandError, match="no sheet “Summer”; its sheets are"):
        run(
            "--campaign=cmd-1", "--mode=email", f"--csv={FILES / 'workbook.xlsx'}", "--sheet=Summer"
        )
    with pytest.raises(CommandError, match="--sheet is the sheet of a workbook"):
        run("--campaign=cmd-1", "--mode=email", "--to=a@example.com", "--sheet=S")
    assert Batch.objects.count() == 0


def test_it_names_the_headers_it_could_not_read(campaign):
    with pytest.raises(CommandError, match="No email column found") as refused:
        run("--campaign=cmd-1", "--mode=email", f"--csv={FILES / 'unknown-headers.xlsx'}")
    assert "“Courriel”, “Prénom et nom”, “Ville”" in str(refused.value)


def test_it_refuses_a_file_over_the_upload_limit_before_reading_it(campaign, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as out:
        out.truncate(20 * 1024 * 1024 + 1)
    with pytest.raises(CommandError, match="larger than 20 MB"):
        run("--campaign=cmd-1", "--mode=email", f"--csv={path}")
