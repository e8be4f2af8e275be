"""A real Celery worker process for tests, on the test database and the test's broker.

    from tests.worker import celery_worker  # noqa: F401  (the fixture)

    def test_it(sandbox, celery_worker):
        worker = celery_worker(env={"MOKUGIFT_READ_TIMEOUT": "1"})   # started and ready
        worker.kill()                                                # SIGKILL, mid-run
        worker = celery_worker()                                     # a new one
        worker.stop()                                                # a warm shutdown

The worker gets the test database (settings.DATABASES inside a test names it), the same
REDIS_URL (its queues purged first) or, without Redis, kombu's filesystem transport in a folder
of its own, and MOKUGIFT_SANDBOX_URL pointing at the live server. It runs Celery beat too
(`-B`), so the sweep runs on its schedule (MOKUGIFT_SWEEP_INTERVAL, short in tests). It is
started as the README starts one, without -Q: it serves every queue. Tests using it need the
live server (which implies `transactional_db`): the worker cannot see rows inside a test's
transaction.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parent.parent
CELERY = BASE_DIR / ".venv" / "bin" / "celery"
READY_TIMEOUT = 60
# A warm shutdown waits for the tasks in hand; the test timeouts (FAST) keep them far shorter.
STOP_TIMEOUT = 30

# Short timeouts and intervals, so that a test with faults converges in seconds.
FAST = {
    "MOKUGIFT_CONNECT_TIMEOUT": "2",
    "MOKUGIFT_READ_TIMEOUT": "10",
    "MOKUGIFT_CALL_DEADLINE": "10",
    "MOKUGIFT_CAMPAIGN_BACKOFF": "0.2",
    "MOKUGIFT_CAMPAIGN_BACKOFF_MAX": "2",
    "MOKUGIFT_SWEEP_MARGIN": "2",
    "MOKUGIFT_SWEEP_INTERVAL": "2",
    "MOKUGIFT_RECONCILE_SETTLE": "1",
    "MOKUGIFT_COMMIT_HORIZON": "3",
    "MOKUGIFT_RETRY_BACKOFF": "0.2",
    "MOKUGIFT_RETRY_BACKOFF_MAX": "2",
    "MOKUGIFT_MAX_ATTEMPTS": "30",
    "MOKUGIFT_CLOCK_SKEW": "5",
}


def database_url() -> str:
    """The URL of the database this test uses (the test database, inside a test)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return "sqlite:///" + str(db["NAME"])
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{auth}{host}{port}/{db['NAME']}"


def _die_with_parent() -> None:
    """In the worker's process, before Celery starts: SIGKILL when the test run that started it
    dies (killed by a timeout, say), so that no worker outlives its run and takes the tasks of
    the next run on the same broker. Linux only; elsewhere nothing."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class CeleryWorker:
    def __init__(self, *, env: dict[str, str], workdir: Path, concurrency: int, beat: bool):
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.log_path = workdir / f"worker-{uuid.uuid4().hex[:6]}.log"
        command = [
            str(CELERY if CELERY.exists() else Path(sys.executable).parent / "celery"),
            "-A",
            "mokudash",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "info",
            "-n",
            self.name,
        ]
        if beat:
            command += ["-B", "-s", str(workdir / f"beat-{uuid.uuid4().hex[:6]}")]
        self._log = self.log_path.open("wb")
        # A session of its own, so that kill() reaches the pool's children too.
        self.process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._wait_ready()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """The worker's own processes: its pool (and beat's, with -B)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The command may hold blanks and brackets: the fields after its ")" are fixed.
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return pids

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The worker exited at start:\n{self.log()[-4000:]}")
            if " ready." in self.log():
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"The worker was not ready in {READY_TIMEOUT} s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool at once, as a crash or the OOM killer would; after a
        stop, whatever is left of it (the worker tells beat to stop, but does not wait for it)."""
        if self._log.closed:
            return  # killed already: its process group may be gone, and its number reused
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def stop(self) -> None:
        """A warm shutdown, as a supervisor asks for one: SIGTERM to the main process alone. It
        stops taking tasks, lets its pool finish the ones in hand, stops its children and beat,
        and exits."""
        # Not to the process group: the pool's children reset SIGTERM to its default, so they
        # would die mid-task (the task lost to the worker, not finished), and on the filesystem
        # broker, where the pool's children share one queue and its lock, a child killed while
        # holding the lock leaves the main process waiting for it at exit, forever.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(
                    f"The worker was still stopping after {STOP_TIMEOUT} s:\n{self.log()[-4000:]}"
                ) from None
        self.kill()


def resident_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def queue_names() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def _purge_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.delete(*queue_names(), "unacked", "unacked_index", "unacked_mutex")
    finally:
        client.close()


def _use_filesystem_broker(folder: Path) -> None:
    """Point this process's Celery app at the worker's own broker folder."""
    from mokudash.celery import app

    for sub in ("queue", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    # Drop the connections and producers made for the old folder: the next publish opens new
    # ones with these options.
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def celery_worker(live_server, settings, tmp_path) -> Callable[..., CeleryWorker]:
    """Start real worker processes (call it; it returns when the worker is ready)."""
    started: list[CeleryWorker] = []
    env = dict(os.environ)
    env.update(FAST)
    env.update(
        {
            "DATABASE_URL": database_url(),
            "DATABASE_CONN_MAX_AGE": "0",
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "MOKUGIFT_SANDBOX_URL": settings.MOKUGIFT_SANDBOX_URL,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.REDIS_URL:
        _purge_redis(settings.REDIS_URL)
    else:
        folder = tmp_path / "broker"
        env["CELERY_FILESYSTEM_BROKER_DIR"] = str(folder)
        _use_filesystem_broker(folder)

    def start(*, env_overrides: dict | None = None, concurrency: int = 2, beat: bool = True):
        # Settings may have moved since the fixture began (the sandbox fixture sets the URL).
        env["MOKUGIFT_SANDBOX_URL"] = settings.MOKUGIFT_SANDBOX_URL
        worker = CeleryWorker(
            env={**env, **(env_overrides or {})},
            workdir=tmp_path,
            concurrency=concurrency,
            beat=beat,
        )
        started.append(worker)
        return worker

    yield start
    try:
        for worker in started:
            worker.stop()
    finally:
        # A worker that would not stop is killed and reported, and none is left behind it.
        for worker in started:
            worker.kill()
        if settings.REDIS_URL:
            _purge_redis(settings.REDIS_URL)


def wait_for(predicate: Callable[[], bool], *, timeout: float, message: str = "") -> None:
    """Poll the database (or anything) until `predicate()` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message or f"Not true within {timeout} s")


@pytest.fixture
def isolated_broker(settings, tmp_path):
    """For tests that run the task bodies in this process: what they enqueue goes to an empty
    queue that nobody serves (purged after), never to a developer's own worker."""
    if settings.REDIS_URL:
        _purge_redis(settings.REDIS_URL)
        yield
        _purge_redis(settings.REDIS_URL)
    else:
        _use_filesystem_broker(tmp_path / "broker")
        yield


@pytest.fixture
def broker_down():
    """This process's Celery app pointed at a port where no broker listens, then back."""
    from kombu import pools

    from mokudash.celery import app

    def reset_pools() -> None:
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url, app.conf.broker_transport_options = "redis://127.0.0.1:9/0", {}
    reset_pools()
    yield
    app.conf.broker_url, app.conf.broker_transport_options = saved
    reset_pools()
