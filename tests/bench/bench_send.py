"""Sending benchmark: PostgreSQL, Redis, real Celery workers, the sandbox on its own server.

    .venv/bin/python tests/bench/bench_send.py [--rows 10000,50000] [--worker-concurrency 4]

It creates its own database (BENCH_DATABASE_URL, default mokudash_bench on the local
PostgreSQL), migrates it, serves the sandbox with gunicorn (threads, DEBUG off) on a free port,
serves the dashboard itself (for the API) with a second gunicorn on another, starts a worker,
measures, prints a table, and drops the database. Redis is BENCH_REDIS_URL (default db 6 of the
local Redis; it is flushed). Measured:

- N recipients, sandbox latency 0 and 100 ms: from batch_create (what the confirm button
  calls) to the last row *sent*;
- the same N recipients through the API: from a real HTTP `POST /api/v1/batches` (one body,
  an Idempotency-Key, a Bearer key) to the dashboard's gunicorn, to the last row *sent*;
- the floor: the same multi calls (the same chunks) made by a bare loop with the client alone
  (no ledger, no Celery) with as many calls in flight as the engine makes,
  MOKUGIFT_SEND_PARALLELISM threads each with its own client taking the next chunk; and the
  ratio of ours to it (target <= 1.3 at both latencies, 10,000 and 50,000 recipients);
- the old floor beside it: the same calls one after the other, and the ratio of ours to that
  (its old target, <= 1.5);
- one reward from the POST of the send form to its row *sent*, latency 0 (median of 5);
- a CSV of the largest size one upload takes (50,000 rows, `--csv-rows`): its upload (the
  POST of the file to the send page, as the browser sends it, through Django's test client in
  this process) to the preview page rendered, target under 3 s, and the confirm POST to the
  batch created, target under 1 s. The batch is then cancelled, so that its sending does not
  load the machine for the next run.

Each bulk measure is run `--repeat` times (3), ours and the floors interleaved so that a burst
of load from elsewhere on the machine hits both sides; the median is shown with every run and
their range, and the load average of the machine is printed before and after.

A script, not a test: it is not collected by pytest (the name does not start with test_).
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parents[2]
VENV_BIN = BASE_DIR / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_connect(url: str):
    import psycopg

    parts = urlparse(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    )


def database_recreate(url: str, *, drop_only: bool = False) -> None:
    name = urlparse(url).path.lstrip("/")
    with admin_connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def gunicorn(port: int, *, workers: int, threads: int, timeout: int | None = None) -> list[str]:
    """The command that serves mokudash (its sandbox included) on 127.0.0.1:`port`."""
    command = [str(VENV_BIN / "gunicorn"), "mokudash.wsgi", "-b", f"127.0.0.1:{port}"]
    command += ["--workers", str(workers), "--threads", str(threads), "--log-level", "warning"]
    return command + (["--timeout", str(timeout)] if timeout else [])


def wait_http(url: str, timeout: float = 30) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def start(command: list[str], *, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=BASE_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        # The main process first: a warm shutdown of the worker and of gunicorn.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def wait_worker_ready(log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready:\n{log.read_text(errors='replace')[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        default="10000",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        help="recipients per bulk send, a comma-separated list (e.g. 10000,50000)",
    )
    parser.add_argument(
        "--csv-rows", type=int, default=50_000, help="rows of the CSV upload; 0: no CSV measure"
    )
    parser.add_argument("--latencies", default="0,100", help="sandbox latencies, ms")
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--sandbox-workers", type=int, default=2)
    parser.add_argument("--sandbox-threads", type=int, default=4)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each bulk measure; the median is shown"
    )
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())

    db_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mokudash_bench"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
    port = free_port()
    dashboard_port = free_port()
    logs = BASE_DIR / "var" / f"bench-{uuid.uuid4().hex[:6]}"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "DJANGO_DEBUG": "false",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            "DJANGO_HSTS_SECONDS": "0",
            # The send pages render in this process: their static URLs without a collectstatic.
            "DJANGO_MANIFEST_STATIC": "false",
            "SANDBOX_ENABLED": "true",
            "MOKUGIFT_SANDBOX_URL": f"http://127.0.0.1:{port}/sandbox/api/",
            "BENCH_API_URL": f"http://127.0.0.1:{dashboard_port}/api/v1/",
            "LOG_LEVEL": "WARNING",
            "CELERY_FILESYSTEM_BROKER_DIR": str(logs / "broker"),
        }
    )
    if args.chunk_size:
        env["MOKUGIFT_CHUNK_SIZE"] = str(args.chunk_size)
    if args.parallelism:
        env["MOKUGIFT_SEND_PARALLELISM"] = str(args.parallelism)
    os.environ.update(env)

    database_recreate(db_url)
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", "migrate", "-v", "0"],
            cwd=BASE_DIR,
            env=env,
            check=True,
        )
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        processes.append(
            start(
                gunicorn(port, workers=args.sandbox_workers, threads=args.sandbox_threads),
                env=env,
                log=logs / "sandbox.log",
            )
        )
        # The dashboard the API's clients reach: its own server, as in production, so that the
        # POST does not take a thread from the sandbox (Mokugift's stand-in).
        processes.append(
            start(
                # batch_create of 50,000 rows (the API's largest body) takes longer than 30 s.
                gunicorn(dashboard_port, workers=1, threads=2, timeout=300),
                env=env,
                log=logs / "dashboard.log",
            )
        )
        worker_log = logs / "worker.log"
        processes.append(
            start(
                [
                    str(VENV_BIN / "celery"),
                    "-A",
                    "mokudash",
                    "worker",
                    "--pool=prefork",
                    f"--concurrency={args.worker_concurrency}",
                    "--without-heartbeat",
                    "--without-mingle",
                    "--without-gossip",
                    "-l",
                    "info",
                    "-n",
                    f"bench-{uuid.uuid4().hex[:6]}@%h",
                ],
                env={**env, "LOG_LEVEL": "INFO"},
                log=worker_log,
            )
        )
        wait_http(env["MOKUGIFT_SANDBOX_URL"] + "all_rewards/none")
        wait_http(env["BENCH_API_URL"] + "openapi.json")
        wait_worker_ready(worker_log)
        results = measure(args=args)
    finally:
        for process in reversed(processes):
            stop(process)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001, S110 - Django may not be set up yet
            pass
        database_recreate(db_url, drop_only=True)
        if not args.keep_logs:
            for path in sorted(logs.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            logs.rmdir()
    report(results, args=args, load_before=load_before)


def measure(*, args) -> list[tuple[str, float, str]]:
    import django
    import requests

    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mokudash.settings")
    django.setup()
    # The send pages' static files are served from STATICFILES_DIRS: no collectstatic here.
    warnings.filterwarnings("ignore", message="No directory at")
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.urls import reverse

    from api.services import api_key_create
    from campaigns import roles
    from campaigns.services import campaign_create
    from rewards.models import Batch, Send
    from rewards.models.ledger import OPEN_STATES
    from rewards.mokugift import MokugiftClient, Recipient
    from rewards.services.sending import RecipientRow, batch_create
    from sandbox.services import sandbox_campaign_save

    chunk = settings.MOKUGIFT_CHUNK_SIZE
    parallelism = settings.MOKUGIFT_SEND_PARALLELISM
    results = Results()
    marketer = User.objects.create_user(username=f"bench-{uuid.uuid4().hex[:6]}")
    marketer.groups.add(Group.objects.get(name=roles.MARKETING))
    api_key = api_key_create(user=marketer, name="bench", scopes="send,read").secret
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {api_key}"

    def campaign(name: str, latency: int):
        sandbox_campaign_save(
            campaign_id=name, passcode="bench-pass", latency_ms=latency, coins=10_000_000
        )
        return campaign_create(
            actor=None, name=name, campaign_id=name, environment="sandbox", passcode="bench-pass"
        )

    def wait_sent(batch: Batch, n: int, *, poll: float) -> None:
        """Until no row of the batch can move any more, then every row must be sent.

        Polled with a probe of the (batch, state) index that stops at the first open row, not
        a count of the sent rows: counting up to 50,000 rows 50 times a second cost the
        database more CPU than the send it watched (quadratic in the batch's size), on the
        machine's two cores that ours shares and the floor does not. A row gone unknown stops
        the bench: only a reconciliation, minutes away on beat's sweep, could move it."""
        open_rows = Send.objects.filter(batch=batch, state__in=OPEN_STATES)
        unknown = Send.objects.filter(batch=batch, state=Send.State.UNKNOWN)
        looked = time.monotonic()
        while open_rows.exists():
            time.sleep(poll)
            if time.monotonic() - looked > 1:
                looked = time.monotonic()
                if unknown.exists():
                    # Only a reconciliation (beat's sweep, minutes away) moves them: no figure.
                    raise RuntimeError(
                        f"{unknown.count()} rows of batch {batch.pk} went unknown (a call's"
                        " outcome unknown); the worker's log says why (--keep-logs)"
                    )
        sent = Send.objects.filter(batch=batch, state=Send.State.SENT).count()
        if sent < n:
            raise RuntimeError(f"{n - sent} rows of batch {batch.pk} did not end sent")

    def api_send(name: str, latency: int, rows: int) -> tuple[Batch, float]:
        """POST the batch to the dashboard's API over HTTP; the batch and the POST's time."""
        api_campaign = campaign(name, latency)
        body = {
            "campaign": api_campaign.campaign_id,
            "mode": "email",
            "recipients": [
                {"recipient": f"a{i}@bench.example", "name": f"A {i}"} for i in range(rows)
            ],
        }
        started = time.perf_counter()
        answer = api.post(
            os.environ["BENCH_API_URL"] + "batches",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            timeout=300,
        )
        posted = time.perf_counter() - started
        if answer.status_code != 201:
            raise RuntimeError(f"the API answered {answer.status_code}: {answer.text[:2000]}")
        return Batch.objects.get(pk=answer.json()["id"]), posted

    def chunks_of(rows: int, prefix: str) -> list[list[Recipient]]:
        """The multi calls' recipient lists, as the engine cuts them (MOKUGIFT_CHUNK_SIZE)."""
        return [
            [
                Recipient(address=f"{prefix}{i}@bench.example", name=f"{prefix.upper()} {i}")
                for i in range(first, min(rows, first + chunk))
            ]
            for first in range(0, rows, chunk)
        ]

    def bare_serial(name: str, latency: int, rows: int) -> float:
        """The old floor: the same calls, one after the other, with the client alone."""
        client = MokugiftClient.for_campaign(campaign(name, latency))
        lists = chunks_of(rows, "b")
        started = time.perf_counter()
        for recipients in lists:
            client.create_rewards(mode="email", recipients=recipients)
        return time.perf_counter() - started

    def bare_parallel(name: str, latency: int, rows: int) -> float:
        """The floor: the same calls with as many in flight as the engine makes
        (MOKUGIFT_SEND_PARALLELISM), each thread with its own client taking the next chunk."""
        bare_campaign = campaign(name, latency)
        lists = chunks_of(rows, "p")
        todo: queue.SimpleQueue[list[Recipient]] = queue.SimpleQueue()
        for recipients in lists:
            todo.put(recipients)
        errors: list[BaseException] = []

        def loop() -> None:
            client = MokugiftClient.for_campaign(bare_campaign)
            try:
                while True:
                    try:
                        recipients = todo.get_nowait()
                    except queue.Empty:
                        return
                    client.create_rewards(mode="email", recipients=recipients)
            except BaseException as error:  # noqa: BLE001 - said after the join
                errors.append(error)

        threads = [threading.Thread(target=loop) for _ in range(parallelism)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.perf_counter() - started
        if errors:
            raise RuntimeError(f"the parallel floor failed: {errors[0]!r}")
        return took

    def runs_note(runs: list[float]) -> str:
        return f"runs {', '.join(f'{x:.2f}' for x in runs)} (range {min(runs):.2f}-{max(runs):.2f})"

    for rows_n in args.rows:
        calls = -(-rows_n // chunk)
        for latency in [int(x) for x in args.latencies.split(",") if x.strip()]:
            ours_runs, serial_runs, floor_runs, creates, api_runs, posts = [], [], [], [], [], []
            ratios, old_ratios, loads = [], [], []
            # Interleaved, so that a burst of load from elsewhere on the machine hits both sides.
            for run in range(args.repeat):
                loads.append(os.getloadavg()[0])
                tag = f"{rows_n}-{latency}-{run}"
                # Ours: from the batch's creation to the last row sent.
                ours_campaign = campaign(f"bench-ours-{tag}", latency)
                rows = [
                    RecipientRow(row_number=i + 2, recipient=f"r{i}@bench.example", name=f"R {i}")
                    for i in range(rows_n)
                ]
                started = time.perf_counter()
                batch = batch_create(
                    campaign=ours_campaign, mode="email", rows=rows, source=Batch.Source.COMMAND
                )
                creates.append(time.perf_counter() - started)
                wait_sent(batch, rows_n, poll=0.02)
                ours_runs.append(time.perf_counter() - started)

                # The floor, right after ours: the same calls, as many in flight.
                floor_runs.append(bare_parallel(f"bench-floor-{tag}", latency, rows_n))
                ratios.append(ours_runs[-1] / floor_runs[-1])

                # Through the API: from the start of the POST to the last row sent.
                started = time.perf_counter()
                batch, posted = api_send(f"bench-api-{tag}", latency, rows_n)
                posts.append(posted)
                wait_sent(batch, rows_n, poll=0.02)
                api_runs.append(time.perf_counter() - started)

                # The old floor: the same calls, one after the other.
                serial_runs.append(bare_serial(f"bench-bare-{tag}", latency, rows_n))
                old_ratios.append(ours_runs[-1] / serial_runs[-1])
            ours = statistics.median(ours_runs)
            floor, serial = statistics.median(floor_runs), statistics.median(serial_runs)
            what = f"{rows_n:,} rewards, latency {latency} ms"
            results.append(
                (
                    f"{what}: ledger + Celery",
                    ours,
                    f"{runs_note(ours_runs)}; batch_create {statistics.median(creates):.2f} s; "
                    f"load {', '.join(f'{x:.1f}' for x in loads)}",
                )
            )
            results.append(
                (
                    f"{what}: API POST + ledger + Celery",
                    statistics.median(api_runs),
                    f"{runs_note(api_runs)}; "
                    f"POST answered 201 in {statistics.median(posts):.2f} s (HTTP, gunicorn)",
                )
            )
            results.append(
                (
                    f"{what}: floor, bare client, {parallelism} in flight",
                    floor,
                    f"{runs_note(floor_runs)}; {calls} calls of {chunk}",
                )
            )
            results.append(
                (
                    f"{what}: old floor, bare client, 1 in flight",
                    serial,
                    f"{runs_note(serial_runs)}; {calls} calls of {chunk}",
                )
            )
            results.append(
                (
                    f"ratio ours / floor, {what}",
                    ours / floor,
                    f"target <= 1.3; per run {', '.join(f'{x:.2f}' for x in ratios)} "
                    f"(range {min(ratios):.2f}-{max(ratios):.2f})",
                )
            )
            results.append(
                (
                    f"ratio ours / old floor, {what}",
                    ours / serial,
                    f"old target <= 1.5; per run {', '.join(f'{x:.2f}' for x in old_ratios)}",
                )
            )

    # One reward, from the POST of the send form to the row sent.
    one = campaign("bench-one", 0)
    browser = Client()
    browser.force_login(marketer)
    timings = []
    for i in range(5):
        started = time.perf_counter()
        response = browser.post(
            reverse("rewards:send_one"),
            {
                "one-campaign": one.pk,
                "one-mode": "link",
                "one-recipient": f"one{i}@bench.example",
                "one-name": "One",
                "one-idempotency_key": uuid.uuid4().hex,
            },
            HTTP_HOST="localhost",
        )
        if response.status_code != 302:
            raise RuntimeError(f"the send form answered {response.status_code}")
        batch = Batch.objects.filter(campaign=one).order_by("-pk").first()
        wait_sent(batch, 1, poll=0.005)
        timings.append(time.perf_counter() - started)
    results.append(
        (
            "1 reward, latency 0: form POST to sent (median of 5)",
            statistics.median(timings),
            f"max {max(timings):.3f} s",
        )
    )
    if args.csv_rows:
        results.extend(csv_measure(args=args, browser=browser, campaign=campaign, note=runs_note))
    return results


class Results(list):
    """The table's rows, each also printed as soon as it is measured: a run that fails late
    (or is stopped) still says what it had measured."""

    def append(self, row: tuple[str, float, str]) -> None:
        super().append(row)
        name, value, note = row
        print(f"  measured: {name}: {value:.2f} ({note})", flush=True)

    def extend(self, rows) -> None:
        for row in rows:
            self.append(row)


def csv_measure(*, args, browser, campaign, note) -> list[tuple[str, float, str]]:
    """A CSV of `--csv-rows` rows: upload to the preview rendered, confirm to the batch made.

    Each run has recipients of its own (the same file again would be "still being sent").
    The batch is cancelled once made: its sending is not what is measured here.
    """
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from rewards.models import Batch
    from rewards.services.sending import batch_cancel

    csv_campaign = campaign("bench-csv", 0)
    uploads, previews, confirms = [], [], []
    for run in range(args.repeat):
        data = (
            "email,name\r\n"
            + "".join(f"c{run}-{i}@bench.example,C {i}\r\n" for i in range(args.csv_rows))
        ).encode()
        upload = SimpleUploadedFile("bench.csv", data, content_type="text/csv")
        started = time.perf_counter()
        response = browser.post(
            reverse("rewards:send_upload"),
            {"bulk-campaign": csv_campaign.pk, "bulk-mode": "email", "bulk-file": upload},
            HTTP_HOST="localhost",
        )
        if response.status_code != 302:
            raise RuntimeError(f"the upload answered {response.status_code}")
        uploaded = time.perf_counter() - started
        preview_url = response["Location"]
        response = browser.get(preview_url, HTTP_HOST="localhost")
        if response.status_code != 200 or b"confirm-send" not in response.content:
            raise RuntimeError(f"the preview answered {response.status_code}")
        previews.append(time.perf_counter() - started)
        uploads.append(uploaded)
        started = time.perf_counter()
        response = browser.post(preview_url, {"send_at": ""}, HTTP_HOST="localhost")
        if response.status_code != 302 or "/batches/" not in response["Location"]:
            raise RuntimeError(f"the confirmation answered {response.status_code}")
        confirms.append(time.perf_counter() - started)
        batch = Batch.objects.filter(campaign=csv_campaign).order_by("-pk").first()
        if batch is None or batch.sends.count() != args.csv_rows:
            raise RuntimeError("the confirmation did not make the batch of every row")
        batch_cancel(batch=batch)
    return [
        (
            f"CSV of {args.csv_rows:,} rows: upload to preview shown",
            statistics.median(previews),
            f"target < 3 s; {note(previews)}; the upload's POST alone "
            f"{statistics.median(uploads):.2f} s",
        ),
        (
            f"CSV of {args.csv_rows:,} rows: confirm to batch created",
            statistics.median(confirms),
            f"target < 1 s; {note(confirms)}",
        ),
    ]


def report(results, *, args, load_before: str) -> None:
    width = max(len(name) for name, *_ in results)
    print()
    print(f"{'measure'.ljust(width)}  {'value':>9}  notes")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 30}")
    for name, value, note in results:
        unit = "" if name.startswith("ratio") else " s"
        print(f"{name.ljust(width)}  {value:>7.2f}{unit:2}  {note}")
    print(
        f"\n(median of {args.repeat} runs; worker concurrency {args.worker_concurrency}, "
        f"{os.cpu_count()} CPUs, load average before: {load_before}, after: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min))"
    )


if __name__ == "__main__":
    main()
