"""`make run` on the embedded default, as a newcomer runs it: SQLite, the filesystem broker, a
real worker process and the sandbox as the API, started by one command that stops on Ctrl-C.

The test starts the real `make run` (on a database and a broker folder of its own), logs in
with the password it prints, sends one reward through the form, watches the worker make it at
the sandbox, and presses Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

BASE_DIR = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MakeRun:
    def __init__(self, *, env: dict[str, str]):
        self.process = subprocess.Popen(
            ["make", "run"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, what, *, timeout: float = START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = what()
            if found:
                return found
            if self.process.poll() is not None:
                pytest.fail(f"make run exited ({self.process.returncode}):\n{self.output()}")
            time.sleep(0.2)
        pytest.fail(f"make run: not ready in {timeout} s:\n{self.output()[-5000:]}")

    def descendants(self) -> set[int]:
        """Every process under `make`: honcho starts each of its own in a new session, so a
        signal to make's process group alone would not reach them."""
        parents: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = set(), [self.process.pid]
        while todo:
            for child in parents.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found

    def kill(self) -> None:
        for pid in self.descendants() | {self.process.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


@pytest.fixture
def make_run(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        # The embedded default: no server of any kind, the sandbox of this same server.
        if k not in ("DATABASE_URL", "REDIS_URL", "MOKUGIFT_SANDBOX_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_FILESYSTEM_BROKER_DIR=str(tmp_path / "broker"),
        WEB_PORT=str(port),
        DJANGO_DEBUG="true",
    )
    run = MakeRun(env=env)
    run.url = f"http://127.0.0.1:{port}"
    yield run
    run.kill()


def test_make_run_serves_the_dashboard_sends_a_reward_and_stops_on_ctrl_c(make_run):
    password = make_run.wait_for(
        lambda: re.search(r"Marketing\s+user marketer\s+password (\S+)", make_run.output())
    ).group(1)

    def web_up():
        try:
            return requests.get(f"{make_run.url}/login/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    make_run.wait_for(web_up)
    make_run.wait_for(lambda: re.search(r"worker\.1\s*\|.* ready\.", make_run.output()))

    # Django's debug mode is off, as in production: our own 404 page, not the yellow one, and
    # the static files (WhiteNoise, from the source folders) and the icon are still served.
    missing = requests.get(f"{make_run.url}/no-such-page/", timeout=10)
    assert missing.status_code == 404
    assert "Page not found" in missing.text and "DEBUG = True" not in missing.text
    login_page = requests.get(f"{make_run.url}/login/", timeout=10).text
    for sheet in re.findall(r'<link rel="stylesheet" href="([^"]+)"', login_page):
        assert requests.get(f"{make_run.url}{sheet}", timeout=10).status_code == 200, sheet
    icon = requests.get(f"{make_run.url}/favicon.ico", timeout=10)
    assert icon.status_code == 200 and icon.headers["Content-Type"] == "image/svg+xml"

    browser = requests.Session()
    browser.get(f"{make_run.url}/accounts/login/", timeout=10)
    logged_in = browser.post(
        f"{make_run.url}/accounts/login/",
        data={
            "login": "marketer",
            "password": password,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        timeout=10,
    )
    assert "/login/" not in logged_in.url, logged_in.text[:2000]

    page = browser.get(f"{make_run.url}/rewards/send/", timeout=10).text
    campaign = re.search(r'name="one-campaign"[^>]*>.*?<option value="(\d+)"', page, re.S)
    key = re.search(r'name="one-idempotency_key" value="(\w+)"', page)
    assert campaign and key, page[:3000]
    sent = browser.post(
        f"{make_run.url}/rewards/send/one/",
        data={
            "one-campaign": campaign.group(1),
            "one-mode": "link",
            "one-recipient": "newcomer@example.com",
            "one-name": "New Comer",
            "one-idempotency_key": key.group(1),
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        timeout=10,
    )
    batch = re.search(r"/rewards/batches/(\d+)/$", sent.url)
    assert batch, sent.text[:3000]
    status_url = f"{make_run.url}/rewards/batches/{batch.group(1)}/status/"

    def finished_by_the_worker():
        # The live part the batch page polls: its state and counts, as the page shows them.
        # The row is counted as sent a moment before the batch is marked done (a second
        # query, after the send), so a poll can fall between the two: wait for both.
        fragment = browser.get(status_url, timeout=10).text
        state = re.search(r'<div id="batch" class="batch-live" data-state="(\w+)"', fragment)
        assert state, fragment[:3000]
        sent = re.search(r'<strong data-count="sent">(\d+)</strong>', fragment)
        return state.group(1) != "sending" and (state.group(1), sent and int(sent.group(1)))

    state, sent = make_run.wait_for(finished_by_the_worker, timeout=60)
    assert (state, sent) == ("done", 1)

    # Ctrl-C in the terminal: SIGINT to the foreground group (make, and honcho under it).
    started = make_run.descendants()
    assert len(started) >= 4, started  # honcho, the web server, the worker and its pool
    os.killpg(make_run.process.pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while alive(started | {make_run.process.pid}) and time.monotonic() < deadline:
        make_run.process.poll()
        time.sleep(0.2)
    assert not alive(started | {make_run.process.pid}), make_run.output()[-3000:]
