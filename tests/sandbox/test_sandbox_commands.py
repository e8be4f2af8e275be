"""The management commands of the sandbox: sandbox_campaign and demo_setup."""

from __future__ import annotations

import datetime as dt
import io
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from campaigns.models import Campaign
from sandbox.models import SandboxCampaign
from sandbox.services import sandbox_passcode_matches

SECRET = "sandbox-secret-7"


def _run(*args, stdin: str | None = None) -> str:
    out = io.StringIO()
    if stdin is not None:
        old, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            call_command("sandbox_campaign", *args, stdout=out)
        finally:
            sys.stdin = old
    else:
        call_command("sandbox_campaign", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_sandbox_campaign_creates_a_campaign_and_prints_it_without_the_passcode():
    out = _run(
        "spring",
        "--passcode",
        SECRET,
        "--coins",
        "50",
        "--trees-per-reward",
        "2",
        "--expires",
        "2030-12-31",
        "--latency-ms",
        "100-250",
        "--fault",
        "drop-after",
        "--fault-rate",
        "0.25",
    )

    campaign = SandboxCampaign.objects.get(campaign_id="spring")
    assert (campaign.coins, campaign.trees_per_reward, campaign.expires) == (
        50,
        2,
        dt.date(2030, 12, 31),
    )
    assert (campaign.latency_ms_min, campaign.latency_ms_max) == (100, 250)
    assert (campaign.fault, campaign.fault_rate, campaign.enabled) == ("drop-after", 0.25, True)
    assert SECRET not in campaign.passcode_hash
    assert sandbox_passcode_matches(campaign=campaign, passcode=SECRET)
    assert SECRET not in out
    assert "sandbox campaign spring" in out
    assert "moku-coins:       50" in out
    assert "100-250 ms" in out
    assert "drop-after at rate 0.25" in out
    assert "2030-12-31" in out


@pytest.mark.django_db
def test_sandbox_campaign_updates_only_what_is_given_and_keeps_the_passcode():
    _run("spring", "--passcode", SECRET, "--coins", "50", "--expires", "2030-12-31")

    out = _run("spring", "--disabled", "--latency-ms", "40", "--fault", "error110")

    campaign = SandboxCampaign.objects.get(campaign_id="spring")
    assert (campaign.coins, campaign.expires, campaign.enabled) == (
        50,
        dt.date(2030, 12, 31),
        False,
    )
    assert (campaign.latency_ms_min, campaign.latency_ms_max) == (40, 40)
    assert sandbox_passcode_matches(campaign=campaign, passcode=SECRET)
    assert "enabled:          no" in out
    assert "40 ms" in out

    _run("spring", "--enabled", "--expires", "never", "--passcode-stdin", stdin="new-one\n")
    campaign.refresh_from_db()
    assert campaign.enabled and campaign.expires is None
    assert sandbox_passcode_matches(campaign=campaign, passcode="new-one")
    assert not sandbox_passcode_matches(campaign=campaign, passcode=SECRET)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["autumn"],  # a new campaign needs a passcode
        ["autumn", "--passcode", "p", "--fault-rate", "1.5"],
        ["autumn", "--passcode", "p", "--fault", "explode"],
        ["autumn", "--passcode", "p", "--latency-ms", "300-100"],
        ["autumn", "--passcode", "p", "--expires", "tomorrow"],
        ["autumn", "--passcode", "p", "--coins", "-1"],
        ["autumn", "--passcode", "p", "--trees-per-reward", "0"],
    ],
)
def test_sandbox_campaign_refuses_what_it_cannot_hold(args):
    with pytest.raises((CommandError, SystemExit)):
        _run(*args)
    assert not SandboxCampaign.objects.exists()


@pytest.mark.django_db
def test_demo_setup_makes_a_sandbox_campaign_with_the_same_passcode_and_prints_the_logins(
    settings,
):
    settings.DEVELOPMENT = True
    # As `make run` has it (the tests' own mail goes to memory).
    settings.MAILERS = {"default": {"BACKEND": "accounts.mail.OutboxBackend"}}
    out = io.StringIO()

    call_command("demo_setup", stdout=out)
    call_command("demo_setup", stdout=out)  # runs again on every `make run`

    text = out.getvalue()
    for username in ("admin", "marketer", "manager"):
        assert f"user {username}" in text
    sandbox = SandboxCampaign.objects.get(campaign_id="demo")
    campaign = Campaign.objects.get(environment="sandbox", campaign_id="demo")
    assert sandbox_passcode_matches(campaign=sandbox, passcode=campaign.passcode)
    assert campaign.passcode not in text
    # Each has a confirmed address, for trying a password reset through the outbox.
    from allauth.account.models import EmailAddress

    assert EmailAddress.objects.filter(email="marketer@example.com", verified=True).count() == 1
    assert "dev/outbox/" in text


@pytest.mark.django_db
def test_demo_setup_refuses_to_run_without_debug(settings):
    settings.DEVELOPMENT = False
    with pytest.raises(CommandError):
        call_command("demo_setup", stdout=io.StringIO())
    assert not SandboxCampaign.objects.exists()


@pytest.mark.django_db
def test_sandbox_campaign_can_add_many_rewards_at_once_for_benchmarks(settings):
    settings.MOKUGIFT_SANDBOX_URL = "http://127.0.0.1:8123/sandbox/api/"

    out = _run("bench", "--passcode", SECRET, "--coins", "5", "--add-rewards", "12001")

    campaign = SandboxCampaign.objects.get(campaign_id="bench")
    assert "Added 12001 rewards." in out
    assert "rewards made:     12001" in out
    assert campaign.coins == 5  # fixture data spends no coins
    assert campaign.rewards.filter(recipient_email="bulk-12000@example.com").count() == 1
    reward = campaign.rewards.first()
    assert reward.url == f"http://127.0.0.1:8123/sandbox/rewards/{reward.remote_id}/"


@pytest.mark.django_db
def test_sandbox_campaign_creates_a_campaign_with_the_passcode_read_from_standard_input():
    out = _run("autumn", "--passcode-stdin", stdin=SECRET + "\n")
    campaign = SandboxCampaign.objects.get(campaign_id="autumn")
    assert sandbox_passcode_matches(campaign=campaign, passcode=SECRET)
    assert SECRET not in out


def test_sandbox_campaigns_help_says_a_passcode_on_the_command_line_shows_in_ps():
    from sandbox.management.commands.sandbox_campaign import Command

    text = " ".join(Command().create_parser("manage.py", "sandbox_campaign").format_help().split())
    assert "--passcode on the command line shows in `ps`" in text
    assert "Other users of the machine can read it in `ps`: prefer --passcode-stdin." in text
