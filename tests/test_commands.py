"""`manage.py campaign_add`: the passcode comes from a prompt or standard input, never argv.

The command runs as a real process on the test database (transactional_db, so that each side
sees the other's rows), with the same encryption keys as this process.
"""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import Kind
from campaigns.management.commands.campaign_add import Command as CampaignAdd
from campaigns.models import Campaign
from tests.client.server import closed_port
from tests.worker import database_url

PASSCODE = "Green-Leaves-passcode-77"
ARGS = ["--name", "Spring", "--campaign-id", "spring-1", "--environment", "sandbox"]


def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        FIELD_ENCRYPTION_KEYS=",".join(settings.FIELD_ENCRYPTION_KEYS),
        PYTHONWARNINGS="ignore",
        # campaign_add checks the new campaign with Mokugift: here nothing answers (the check
        # against the sandbox is in test_campaign_check.py).
        MOKUGIFT_SANDBOX_URL=f"http://127.0.0.1:{closed_port()}/sandbox/api/",
    )
    return env


@pytest.fixture(autouse=True)
def _no_mokugift(settings):
    settings.MOKUGIFT_SANDBOX_URL = f"http://127.0.0.1:{closed_port()}/sandbox/api/"


def campaign_add(*args: str, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "campaign_add", *args],
        input=stdin,
        env=command_env(),
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def raw_row(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM campaigns_campaign WHERE id = %s", [pk])
        return " ".join(str(value) for value in cursor.fetchone())


@pytest.mark.django_db(transaction=True)
def test_it_reads_the_passcode_from_standard_input_and_stores_it_encrypted():
    result = campaign_add(*ARGS, "--passcode-stdin", stdin=PASSCODE + "\n")
    assert result.returncode == 0, result.stderr
    assert "Added campaign Spring (spring-1, sandbox)" in result.stdout
    assert PASSCODE not in result.stdout + result.stderr

    campaign = Campaign.objects.get(campaign_id="spring-1")
    assert campaign.passcode == PASSCODE  # no trailing newline
    assert PASSCODE not in raw_row(campaign.pk)
    event = campaign.audit_events.get(kind=Kind.CAMPAIGN_CREATED)
    assert (event.actor, event.detail["credential_replaced"]) == (None, True)
    # Nothing answers at the sandbox URL here: the check could not ask, and says so.
    assert "Connection check: could not check: could not connect" in result.stderr
    assert "manage.py campaign_check --campaign" in result.stderr


def _run_in_terminal(args: list[str], typed: str) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as its controlling terminal (as getpass needs),
    type `typed` once it prompts, and return its exit status and everything the terminal
    showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        try:
            os.chdir(settings.BASE_DIR)
            os.execve(sys.executable, [sys.executable, *args], command_env())  # noqa: S606
        finally:
            os._exit(127)
    shown = b""
    deadline = time.monotonic() + 60
    typed_yet = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        if not typed_yet and b"Passcode:" in shown:
            os.write(fd, typed.encode() + b"\n")
            typed_yet = True
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


@pytest.mark.django_db(transaction=True)
def test_it_prompts_for_the_passcode_without_echoing_it():
    code, shown = _run_in_terminal(["manage.py", "campaign_add", *ARGS], PASSCODE)
    assert code == 0, shown
    assert "Passcode:" in shown
    assert "Added campaign Spring" in shown
    # getpass turned the terminal's echo off: what was typed is nowhere on the screen.
    assert PASSCODE not in shown
    assert Campaign.objects.get(campaign_id="spring-1").passcode == PASSCODE


@pytest.mark.django_db(transaction=True)
def test_it_has_no_passcode_option_on_the_command_line():
    options = {
        s
        for action in CampaignAdd().create_parser("manage.py", "x")._actions
        for s in action.option_strings
    }
    assert {o for o in options if "passcode" in o} == {"--passcode-stdin"}

    result = campaign_add(*ARGS, "--passcode", PASSCODE, stdin="")
    assert result.returncode != 0
    assert "unrecognized arguments: --passcode" in result.stderr
    assert not Campaign.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"])
def test_it_refuses_an_empty_passcode(monkeypatch, stdin):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(CommandError, match="The passcode is empty"):
        call_command("campaign_add", *ARGS, "--passcode-stdin")
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_a_campaign_id_taken_in_that_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSCODE + "\n"))
    call_command("campaign_add", *ARGS, "--passcode-stdin", stdout=io.StringIO())
    monkeypatch.setattr(sys, "stdin", io.StringIO("another\n"))
    with pytest.raises(CommandError, match="already") as excinfo:
        call_command("campaign_add", *ARGS, "--passcode-stdin")
    assert PASSCODE not in str(excinfo.value)
    assert Campaign.objects.count() == 1
