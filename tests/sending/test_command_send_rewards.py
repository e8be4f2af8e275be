"""`manage.py send_rewards`: the same ledger and tasks as the web page, from a shell."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from campaigns.services import campaign_create
from rewards.models import Batch
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
