"""`manage.py api_key_create`: the key alone on standard output, once, and an error naming
the option for each wrong argument."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from api.models import ApiKey
from audit.models import AuditEvent, Kind
from tests.api.conftest import ApiClient
from tests.conftest import need_service

pytestmark = pytest.mark.django_db


def _run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("api_key_create", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_prints_a_key_that_works_against_the_api(client, marketer, spring):
    out, err = _run("--user", marketer.username, "--name", "CRM", "--scope", "read,reports")
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mkd_")
    secret = lines[0]
    key = ApiKey.objects.get()
    assert (key.user, key.name, key.scopes, key.expires_at) == (
        marketer,
        "CRM",
        ["read", "reports"],
        None,
    )
    assert "CRM" in err and "expires never" in err and secret not in err
    assert ApiClient(client, secret).get("/campaigns").status_code == 200
    assert AuditEvent.objects.get(kind=Kind.API_KEY_CREATED).actor == marketer


def test_it_takes_an_expiry_in_days(marketer):
    _run("--user", marketer.username, "--name", "CRM", "--scope", "send", "--expires-days", "30")
    key = ApiKey.objects.get()
    assert (key.expires_at - key.created_at).days == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody"], "--user: no person has the username 'nobody'"),
        (["--scope", "read,admin"], "--scope: Unknown scope 'admin'"),
        (["--scope", " , "], "--scope: A key needs at least one scope"),
        (["--expires-days", "soon"], "--expires-days: 'soon' is not a number of days"),
        (["--expires-days", "0"], "--expires-days: from 1 to 3650 days, not 0"),
        (["--expires-days", "4000"], "--expires-days: from 1 to 3650 days, not 4000"),
        (["--name", "  "], "--name: A key needs a name"),
    ],
)
def test_each_wrong_argument_is_an_error_naming_it(marketer, args, message):
    given = {"--user": marketer.username, "--name": "CRM", "--scope": "read"}
    given.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(CommandError) as raised:
        _run(*[part for pair in given.items() for part in pair])
    assert str(raised.value).startswith(message), str(raised.value)
    assert not ApiKey.objects.exists()


def test_a_deactivated_person_gets_no_key(marketer):
    marketer.is_active = False
    marketer.save()
    with pytest.raises(CommandError, match="--user: mark-marketer is deactivated"):
        _run("--user", marketer.username, "--name", "CRM", "--scope", "read")
    assert not ApiKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_from_a_shell_the_key_is_the_only_line_on_standard_output(marketer):
    # As a deploy script reads it: `KEY=$(manage.py api_key_create …)`.
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "manage.py", "api_key_create", "--user", marketer.username]
        + ["--name", "deploy", "--scope", "read"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DATABASE_URL": _database_url()},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("mkd_")
    assert done.stdout.strip() not in done.stderr
    assert ApiKey.objects.get().prefix == done.stdout[:10]


def _database_url() -> str:
    """The test database, for a second process: DATABASE_URL with the test database's name."""
    from urllib.parse import urlsplit, urlunsplit

    from django.db import connection

    url = os.environ.get("DATABASE_URL", "")
    if connection.vendor != "postgresql" or not url.startswith("postgres"):
        need_service("a second process reaches the test database on PostgreSQL only")
    return urlunsplit(urlsplit(url)._replace(path="/" + connection.settings_dict["NAME"]))
