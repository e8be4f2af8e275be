"""The sandbox on its own (`manage.py sandbox_serve`) and under gunicorn, as production runs it:
the connection faults must work with either server's sockets, not only with live_server's."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time

import pytest
import requests
from django.conf import settings
from django.db import connection

from sandbox.models import SandboxReward
from sandbox.services import sandbox_campaign_save
from tests.conftest import need_service
from tests.sandbox.helpers import TIMEOUT, parse

PASS = "pass-1"


def _database_url() -> str:
    """The test database the tests write to, as a URL a second process can open."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        if "memory" in str(db["NAME"]) or str(db["NAME"]).startswith(":"):
            need_service("a test database on disk that a second process can open")
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DJANGO_DEBUG": "true",
        "SANDBOX_ENABLED": "true",
        "DATABASE_CONN_MAX_AGE": "0",
    }


def _start(command: list[str], ready: str) -> tuple[subprocess.Popen, str]:
    """Start a server and wait for the line that names its port (stdout and stderr merged)."""
    process = subprocess.Popen(
        command,
        cwd=settings.BASE_DIR,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        found = re.search(ready, line)
        if found:
            return process, f"http://127.0.0.1:{found['port']}/sandbox/api/"
    process.kill()
    pytest.fail("the server did not start:\n" + "".join(seen))


@pytest.fixture(params=["sandbox_serve", "gunicorn"])
def server(request, transactional_db):
    if request.param == "sandbox_serve":
        command = [sys.executable, "manage.py", "sandbox_serve", "--port", "0"]
        ready = r"sandbox at http://127\.0\.0\.1:(?P<port>\d+)/"
    else:
        command = [
            *(sys.executable, "-m", "gunicorn", "mokudash.wsgi"),
            *("--bind", "127.0.0.1:0", "--workers", "1", "--threads", "4"),
            # Not the shared ~/.gunicorn/gunicorn.ctl of every gunicorn on the machine.
            "--no-control-socket",
        ]
        ready = r"Listening at: http://127\.0\.0\.1:(?P<port>\d+)"
    process, api_url = _start(command, ready)
    yield api_url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _reward(api_url: str, timeout=TIMEOUT) -> requests.Response:
    return requests.post(
        api_url + "reward_url/c-1",
        data={"passcode": PASS, "recipient_email": "a@b.com"},
        timeout=timeout,
    )


def _count() -> int:
    return SandboxReward.objects.filter(campaign__campaign_id="c-1").count()


def test_each_fault_works_under_this_server(server):
    sandbox_campaign_save(campaign_id="c-1", passcode=PASS)
    assert parse(_reward(server)).findtext("status") == "Success"
    assert _count() == 1

    sandbox_campaign_save(campaign_id="c-1", fault="drop-before")
    with pytest.raises(requests.ConnectionError):
        _reward(server)
    assert _count() == 1

    sandbox_campaign_save(campaign_id="c-1", fault="drop-after")
    with pytest.raises(requests.ConnectionError):
        _reward(server)
    assert _count() == 2

    sandbox_campaign_save(campaign_id="c-1", fault="timeout-after", fault_delay=1.0)
    with pytest.raises(requests.ReadTimeout):
        _reward(server, timeout=(5, 0.3))
    assert _count() == 3

    sandbox_campaign_save(campaign_id="c-1", fault="http500")
    assert _reward(server).status_code == 500
    assert _count() == 3


def test_a_drop_under_a_server_that_gives_no_socket_answers_500_instead():
    """Under ASGI there is no WSGI environ to find the socket in: the fault falls back to an
    HTTP 500 (and a warning), as it does under a WSGI server that hides its socket."""
    from django.test import AsyncRequestFactory, RequestFactory

    from sandbox.responses import connection_drop

    for request in (AsyncRequestFactory().post("/"), RequestFactory().post("/")):
        assert connection_drop(request).status_code == 500
