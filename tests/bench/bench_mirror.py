"""Mirror benchmark: PostgreSQL, the sandbox on its own server (gunicorn), real HTTP.

    .venv/bin/python tests/bench/bench_mirror.py [--sync-rows 1000000] [--sync-runs 3]
        [--browse-rows 1000000] [--export-runs 3] [--sync-only | --home-only | --export-only]

It creates its own database (BENCH_DATABASE_URL, default mokudash_bench_mirror on the local
PostgreSQL), migrates it, serves the sandbox with gunicorn on a free port, measures, prints a
table, and drops the database. Measured:

- `sync_rewards --all --wait` (its own process, tests/bench/manage_child.py, which reports its
  own peak RSS) of an all_rewards answer of N rewards into an empty mirror, then again with
  nothing changed, and once more as the nightly sync finds it (every row's last_seen_at due for
  renewal: MIRROR_LAST_SEEN_RESOLUTION=0), `--sync-runs` times; beside the floors of each
  run, COPY of the same rows from a CSV file into a table shaped like the mirror (same columns
  and indexes) without foreign keys (the old floor) and with the mirror's (the new one: target
  at most 3 times it), and the bare client reading the answer (HTTP + XML, no database); each
  figure per run, then its median [min-max] (`--sync-only` stops there);
- the rewards page (Django's test client, in process: server time without the network), first
  page and page 1,000 (its cursor), median of 15, on a mirror of 10,000 and of 1,000,000;
- the monthly report of a year over the 1,000,000, with a ledger of 10,000 sent rows;
- the home page of each role (Admin, Marketing, Manager) over the 1,000,000, with the ledger
  above and forty batches (paused, unknown rows, failures), median of 15, beside the floor: the
  same request by a person with no role (session, user, permissions, the layout; no figures),
  and the number of queries of each (`--home-only` measures this alone, on a mirror made for it);
- the CSV of the 1,000,000, by `export_rewards` and by the page's download (each in its own
  process, tests/bench/export_child.py), by the csv module (the figures before COPY) and by
  COPY (PostgreSQL's path now): rows per second and the process's peak RSS, beside the floor,
  `COPY (the filter's bare SELECT) TO STDOUT` into a file just before each, `--export-runs`
  times, each run's figures and then their median [min-max]; every file must be identical
  (`--export-only` measures this alone, on the mirror of `--home-only`).

A script, not a test: it is not collected by pytest (the name does not start with test_).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.bench_send import (  # noqa: E402  (the path above first)
    BASE_DIR,
    VENV_BIN,
    database_recreate,
    free_port,
    gunicorn,
    start,
    stop,
    wait_http,
)

PASSCODE = "bench-pass"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sync-rows", type=int, default=1_000_000)
    parser.add_argument("--sync-runs", type=int, default=3, help="Runs of the sync's figures.")
    parser.add_argument("--export-runs", type=int, default=3, help="Runs of the export's figures.")
    parser.add_argument("--browse-rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=10_000)
    parser.add_argument("--ledger-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sync-only", action="store_true", help="Stop after the sync figures.")
    parser.add_argument(
        "--home-only", action="store_true", help="Only the home page, on a mirror made for it."
    )
    parser.add_argument(
        "--export-only", action="store_true", help="Only the CSV export, on a mirror made for it."
    )
    args = parser.parse_args()

    db_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mokudash_bench_mirror"
    )
    port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="bench-mirror-"))
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": db_url,
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"),
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",
            "DJANGO_HSTS_SECONDS": "0",
            "DJANGO_MANIFEST_STATIC": "false",
            "SANDBOX_ENABLED": "true",
            "MOKUGIFT_SANDBOX_URL": f"http://127.0.0.1:{port}/sandbox/api/",
            "MOKUGIFT_READ_TIMEOUT": "300",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.setdefault("DJANGO_SECRET_KEY", "bench-" + uuid.uuid4().hex * 2)
    os.environ.update(env)
    database_recreate(db_url)
    sandbox = None
    results: list[tuple[str, str, str]] = []
    try:
        subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", "migrate", "-v", "0"],
            cwd=BASE_DIR,
            env=env,
            check=True,
        )
        sandbox = start(
            gunicorn(port, workers=1, threads=2, timeout=300),
            env=env,
            log=logs / "sandbox.log",
        )
        wait_http(env["MOKUGIFT_SANDBOX_URL"] + "all_rewards/none")
        results = measure(args=args, env=env, logs=logs)
    finally:
        if sandbox is not None:
            stop(sandbox)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001, S110 - Django may not be set up yet
            pass
        database_recreate(db_url, drop_only=True)
        for path in sorted(logs.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        logs.rmdir()
    width = max(len(name) for name, _, _ in results)
    print()
    for name, figure, note in results:
        print(f"{name:<{width}}  {figure:>14}  {note}")


def _child_rss(
    command: list[str], env: dict, *, python_script: bool = False
) -> tuple[float, float, str]:
    """(seconds, the child's own peak RSS in MiB, its output) of a manage.py command (or of a
    Python script, `python_script`)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(VENV_BIN / "python"), *([] if python_script else ["manage.py"]), *command],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(out.decode(errors="replace")[-3000:])
    return elapsed, usage.ru_maxrss / 1024, out.decode(errors="replace")


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm: connection, caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(*, args, env: dict, logs: Path) -> list[tuple[str, str, str]]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mokudash.settings")
    django.setup()
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from campaigns import roles
    from campaigns.services import campaign_create
    from rewards.models import MirroredReward
    from rewards.selectors.mirror import cursor_encode
    from rewards.services.sync import mirror_sends_link, monthly_summaries_from_mirror

    results: list[tuple[str, str, str]] = []

    def note(name: str, figure: str, extra: str = "") -> None:
        results.append((name, figure, extra))
        print(f"  {name}: {figure} {extra}", flush=True)

    if args.home_only:
        home_only_setup(args=args)
        measure_home(args=args, note=note)
        return results
    if args.export_only:
        measure_export(
            campaign_pk=export_only_setup(args=args),
            env=env,
            logs=logs,
            note=note,
            runs=args.export_runs,
        )
        return results

    # --- 1. Sync of an all_rewards answer ------------------------------------------------
    measure_sync(args=args, env=env, logs=logs, note=note)
    if args.sync_only:
        return results

    # --- 2. Browse on 10,000 then 1,000,000 ----------------------------------------------
    manager = User.objects.create_user("bench-manager", password=uuid.uuid4().hex)
    manager.groups.add(Group.objects.get(name=roles.MANAGER))
    web = Client()
    web.force_login(manager, backend="allauth.account.auth_backends.AuthenticationBackend")
    big = campaign_create(
        actor=None, name="big", campaign_id="big", environment="sandbox", passcode=PASSCODE
    )
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM rewards_mirroredreward")

    def fill(first_n: int, last_n: int) -> None:
        # Dates spread over 2026, a second apart per 31 rewards: many share a second.
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO rewards_mirroredreward (campaign_id, remote_id, date,
                    recipient_email, recipient_id, tree_count, first_seen_at, last_seen_at)
                SELECT %s, 'b' || n,
                       timestamptz '2026-01-01' + make_interval(secs => (n * 31) %% 31536000),
                       'person' || n || '@example.com', '', 1 + n %% 3, now(), now()
                FROM generate_series(%s, %s) AS n
                """,
                [big.pk, first_n, last_n],
            )
            cursor.execute("VACUUM ANALYZE rewards_mirroredreward")

    def browse(label: str) -> tuple[float, float]:
        url = reverse("rewards:list")
        first_ms = _median_ms(lambda: _ok(web.get(url)), args.repeat)
        # Page 1,000, or the last page of a mirror too small to have one.
        depth = min(1000, MirroredReward.objects.count() // 50)
        row = (
            MirroredReward.objects.order_by("-date", "-id")
            .values_list("date", "id")[50 * (depth - 1) - 1 : 50 * (depth - 1)]
            .get()
        )
        cursor = cursor_encode(date=row[0], pk=row[1], forward=True)
        deep_ms = _median_ms(lambda: _ok(web.get(url, {"cursor": cursor})), args.repeat)
        filtered_ms = _median_ms(
            lambda: _ok(web.get(url, {"campaign": big.pk, "cursor": cursor})), args.repeat
        )
        _profile(web, url, {})
        note(f"browse {label}: first page", f"{first_ms:.1f} ms", "median; target < 50 ms")
        note(f"browse {label}: page {depth:,}", f"{deep_ms:.1f} ms", "median; target < 50 ms")
        note(f"browse {label}: page {depth:,}, one campaign", f"{filtered_ms:.1f} ms", "median")
        return first_ms, deep_ms

    fill(1, args.small_rows)
    small = browse(f"{args.small_rows:,}")
    fill(args.small_rows + 1, args.browse_rows)
    large = browse(f"{args.browse_rows:,}")
    note(
        "browse: 1M / 10k ratio",
        f"{large[0] / small[0]:.2f}x / {large[1] / small[1]:.2f}x",
        "first page / deep page; target within 1.5x",
    )

    # --- 3. The monthly report over 1,000,000 ----------------------------------------------
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO rewards_batch (campaign_id, mode, source, state, paused_reason,"
            " filename, left_out, created_by_id, created_at, approval_needed, decline_reason,"
            " sent_anyway) VALUES (%s, 'email', 'csv', 'done', '', 'bench.csv', '[]', %s,"
            " now(), false, '', '[]') RETURNING id",
            [big.pk, manager.pk],
        )
        batch_id = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO rewards_send (batch_id, row_number, recipient, name, state, attempts,
                remote_id, url, link_not_recovered, transaction_id, error_message, sent_at,
                updated_at, first_attempt_at)
            SELECT %s, n + 1, 'person' || (n * 97) || '@example.com', 'Person ' || n, 'sent', 1,
                   'b' || (n * 97), '', false, '', '',
                   timestamptz '2026-01-01' + make_interval(secs => (n * 97 * 31) %% 31536000),
                   now(), now()
            FROM generate_series(1, %s) AS n
            """,
            [batch_id, args.ledger_rows],
        )
    started = time.perf_counter()
    linked = mirror_sends_link(campaign_id=big.pk)
    note(
        "sync step: link ledger rows",
        f"{(time.perf_counter() - started) * 1000:.0f} ms",
        f"{linked:,} linked",
    )
    started = time.perf_counter()
    from django.utils import timezone

    monthly_summaries_from_mirror(campaign_id=big.pk, synced_at=timezone.now())
    note("sync step: month summaries from 1M", f"{(time.perf_counter() - started) * 1000:.0f} ms")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    report_ms = _median_ms(
        lambda: _ok(web.get(reverse("rewards:report"), {"year": 2026})), args.repeat
    )
    _profile(web, reverse("rewards:report"), {"year": 2026})
    note("report: year 2026 over 1M rewards", f"{report_ms:.1f} ms", "median; target < 200 ms")

    measure_home(args=args, note=note)

    # --- 4. CSV export of 1,000,000 ------------------------------------------------------
    measure_export(campaign_pk=big.pk, env=env, logs=logs, note=note, runs=args.export_runs)
    return results


def measure_sync(*, args, env: dict, logs: Path, note) -> None:
    """`sync_rewards --all --wait` of an all_rewards answer of `--sync-rows` rewards, each in a
    process of its own (tests/bench/manage_child.py, which reports its own peak RSS), into an
    empty mirror and again with nothing changed, `--sync-runs` times. In each run, right after
    the syncs (the machine is shared): the floors, a bare COPY of the same rows from a CSV file
    into a table shaped like the mirror (its columns, checks and indexes) without foreign keys
    (the old floor) and with the mirror's (the new one), and the bare client reading the
    answer (HTTP + XML, no database). Each run's figures as measured, in the words the script
    used before, then the median [min-max] of each."""
    from django.db import connection

    from campaigns.services import campaign_create
    from rewards.models import MirroredReward, MonthlySummary
    from rewards.mokugift import MokugiftClient
    from sandbox.models import SandboxCampaign
    from sandbox.services import sandbox_campaign_save

    n = args.sync_rows
    sandbox_campaign_save(campaign_id="sync", passcode=PASSCODE, coins=10_000_000)
    sync_campaign = campaign_create(
        actor=None, name="sync", campaign_id="sync", environment="sandbox", passcode=PASSCODE
    )
    sandbox_pk = SandboxCampaign.objects.get(campaign_id="sync").pk
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO sandbox_sandboxreward (campaign_id, remote_id, transaction_id,
                recipient_email, recipient_id, name, created, tree_count, emailed, url)
            SELECT %s, md5(n::text), 't' || (n / 1000),
                   CASE WHEN n %% 10 = 0 THEN '' ELSE 'person' || n || '@example.com' END,
                   CASE WHEN n %% 10 = 0 THEN 'user' || n ELSE '' END, '',
                   timestamptz '2025-01-01' + make_interval(secs => n * 150), 1 + n %% 3,
                   false, 'http://x/' || n
            FROM generate_series(1, %s) AS n
            """,
            [sandbox_pk, n],
        )
        cursor.execute("ANALYZE sandbox_sandboxreward")
    # A campaign whose answer lists nothing: the same command's floor of the peak RSS.
    sandbox_campaign_save(campaign_id="sync-none", passcode=PASSCODE, coins=1)
    none_campaign = campaign_create(
        actor=None, name="sync-none", campaign_id="sync-none", environment="sandbox",
        passcode=PASSCODE,
    )  # fmt: skip

    # The floors' rows: the same rows as a CSV file, written once.
    csv_path = logs / "floor.csv"
    with (
        connection.cursor() as cursor,
        open(csv_path, "wb") as out_file,
        cursor.copy(
            f"""COPY (SELECT {sync_campaign.pk}, remote_id, created, recipient_email,
                recipient_id, tree_count, now(), now() FROM sandbox_sandboxreward
                WHERE campaign_id = {sandbox_pk} ORDER BY created, id) TO STDOUT WITH CSV"""  # noqa: S608
        ) as copy,
    ):
        for data in copy:
            out_file.write(data)

    def copy_floor(*, foreign_keys: bool) -> float:
        # LIKE copies columns, checks and indexes, never foreign keys: the mirror's are added
        # on request, as Django makes them (deferred: each row's is checked at the commit,
        # which the COPY's autocommit does inside the time taken).
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE floor_mirror (LIKE rewards_mirroredreward INCLUDING ALL)")
            if foreign_keys:
                for column, target in (
                    ("campaign_id", "campaigns_campaign"),
                    ("send_id", "rewards_send"),
                ):
                    cursor.execute(
                        f"ALTER TABLE floor_mirror ADD FOREIGN KEY ({column})"
                        f" REFERENCES {target} (id) DEFERRABLE INITIALLY DEFERRED"
                    )
        started = time.perf_counter()
        with (
            connection.cursor() as cursor,
            open(csv_path, "rb") as in_file,
            cursor.copy(
                "COPY floor_mirror (campaign_id, remote_id, date, recipient_email, recipient_id,"
                " tree_count, first_seen_at, last_seen_at) FROM STDIN WITH CSV"
            ) as copy,
        ):
            while data := in_file.read(1 << 20):
                copy.write(data)
        seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE floor_mirror")
        return seconds

    def client_read() -> float:
        client = MokugiftClient.for_campaign(sync_campaign)
        started = time.perf_counter()
        count = 0
        with client.all_rewards() as stream:
            for _ in stream:
                count += 1
        assert count == n, count
        return time.perf_counter() - started

    child = str(BASE_DIR / "tests" / "bench" / "manage_child.py")

    def sync(campaign_pk: int, expect: str, **settings: str) -> dict[str, float]:
        """The command in its own process (with these settings in its environment): its
        seconds with the process's start and without (Django started), the run's own
        (SyncRun), its peak RSS (VmHWM) and wait4's ru_maxrss (the figure printed before, which
        is at least the bench's own: see export_child.peak_rss_mib)."""
        wall, maxrss, out = _child_rss(
            [child, "sync_rewards", "--campaign", str(campaign_pk), "--all", "--wait"],
            {**env, **settings},
            python_script=True,
        )
        assert expect in out, out
        seconds, rss = map(float, out.strip().splitlines()[-1].split())
        return {"process": wall, "command": seconds, "run": _last_run_seconds(), "rss": rss,
                "maxrss": maxrss}  # fmt: skip

    empty = sync(none_campaign.pk, "created 0, changed 0")
    note("sync floor: the command over an answer without rewards", f"{empty['rss']:.0f} MiB",
         f"peak RSS (VmHWM); {empty['command']:.2f} s ({empty['process']:.2f} s with the "
         "process's start)")  # fmt: skip

    figures: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> float:
        figures.setdefault(name, []).append(value)
        return value

    for run in range(1, args.sync_runs + 1):
        tag = f"run {run}/{args.sync_runs}"
        # Each run starts from an empty mirror, as the first finds it (no row refers to one).
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {MirroredReward._meta.db_table}")  # noqa: S608
        MonthlySummary.objects.filter(campaign=sync_campaign).delete()
        load = os.getloadavg()[0]
        first = sync(sync_campaign.pk, f"created {n}")
        again = sync(sync_campaign.pk, "created 0, changed 0")
        # The nightly re-sync: more than MIRROR_LAST_SEEN_RESOLUTION after the last, so every
        # row's last_seen_at is renewed (0 s here: as if the last sync were a day old).
        later = sync(sync_campaign.pk, "created 0, changed 0", MIRROR_LAST_SEEN_RESOLUTION="0")
        floor = keep("floor", copy_floor(foreign_keys=False))
        with_keys = keep("floor FK", copy_floor(foreign_keys=True))
        read_only = keep("read", client_read())
        for name, one in (("sync", first), ("again", again), ("later", later)):
            for measure in ("process", "command", "run", "rss", "maxrss"):
                keep(f"{name} {measure}", one[measure])
            keep(f"{name}/FK", one["command"] / with_keys)
            keep(f"{name}/FK process", one["process"] / with_keys)
            keep(f"{name}/floor", one["command"] / floor)
        # The figures the script printed before, in its words, then the new ones.
        note(f"{tag} sync: client reads the answer (HTTP + XML)", f"{read_only:.2f} s",
             f"{n:,} rewards; load average before the run {load:.1f}")  # fmt: skip
        note(f"{tag} sync: the run itself (SyncRun start to finish)", f"{first['run']:.2f} s")
        note(f"{tag} sync: all_rewards into an empty mirror", f"{first['process']:.2f} s",
             f"target <= 15 s; RSS {first['maxrss']:.0f} MiB (ru_maxrss: the old figure)"
             )  # fmt: skip
        note(f"{tag} sync again: the run itself", f"{again['run']:.2f} s")
        note(f"{tag} sync: again, nothing changed", f"{again['process']:.2f} s",
             f"target <= 8 s; RSS {again['maxrss']:.0f} MiB (ru_maxrss: the old figure)"
             )  # fmt: skip
        note(f"{tag} floor: COPY of the same rows from CSV", f"{floor:.2f} s",
             f"sync/floor {first['process'] / floor:.1f}x, again/floor "
             f"{again['process'] / floor:.1f}x")  # fmt: skip
        note(f"{tag} floor, with the mirror's foreign keys", f"{with_keys:.2f} s",
             f"sync/this {first['process'] / with_keys:.1f}x, again/this "
             f"{again['process'] / with_keys:.1f}x")  # fmt: skip
        for label, one in (("sync", first), ("re-sync", again), ("re-sync a day on", later)):
            note(f"{tag} {label}: the command (Django started)", f"{one['command']:.2f} s",
                 f"/ FK floor {one['command'] / with_keys:.2f}x (target <= 3), / no-FK floor "
                 f"{one['command'] / floor:.2f}x; peak RSS (VmHWM) {one['rss']:.0f} MiB "
                 "(target < 150 MiB)")  # fmt: skip

    def met(name: str, *, limit: float, strict: bool = False) -> str:
        worst = max(figures[name])
        if worst < limit or (worst == limit and not strict):
            return "met by every run"
        return f"NOT met (worst run {worst:.2f})"

    runs = args.sync_runs
    for name, key, unit, target in (
        ("sync: into an empty mirror, the command", "sync command", " s", ""),
        ("sync: the same, with the process's start", "sync process", " s", "target <= 15 s (old)"),
        ("sync: the run itself (SyncRun)", "sync run", " s", ""),
        ("re-sync: nothing changed, the command", "again command", " s", ""),
        ("re-sync: the same, with the process's start", "again process", " s",
         "target <= 8 s (old)"),
        ("re-sync: the run itself (SyncRun)", "again run", " s", ""),
        ("re-sync a day on: every last_seen_at renewed, the command", "later command", " s", ""),
        ("floor: COPY, no foreign keys (the old floor)", "floor", " s", ""),
        ("floor: COPY, the mirror's foreign keys", "floor FK", " s", ""),
        ("floor: the client reads the answer", "read", " s", "HTTP + XML, no database"),
        ("ratio: sync / FK floor", "sync/FK", "x", f"target <= 3: {met('sync/FK', limit=3)}"),
        ("ratio: re-sync / FK floor", "again/FK", "x", f"target <= 3: {met('again/FK', limit=3)}"),
        ("ratio: re-sync a day on / FK floor", "later/FK", "x",
         f"target <= 3: {met('later/FK', limit=3)}"),
        ("ratio: sync / FK floor, with the process's start", "sync/FK process", "x", ""),
        ("ratio: re-sync / FK floor, with the process's start", "again/FK process", "x", ""),
        ("ratio: sync / no-FK floor (the old floor)", "sync/floor", "x", ""),
        ("ratio: re-sync / no-FK floor (the old floor)", "again/floor", "x", ""),
        ("peak RSS: sync (VmHWM)", "sync rss", " MiB",
         f"target < 150 MiB: {met('sync rss', limit=150, strict=True)}"),
        ("peak RSS: re-sync (VmHWM)", "again rss", " MiB",
         f"target < 150 MiB: {met('again rss', limit=150, strict=True)}"),
        ("peak RSS: re-sync a day on (VmHWM)", "later rss", " MiB",
         f"target < 150 MiB: {met('later rss', limit=150, strict=True)}"),
        ("peak RSS: sync, ru_maxrss (the old figure)", "sync maxrss", " MiB",
         "at least the bench's own"),
        ("peak RSS: re-sync, ru_maxrss (the old figure)", "again maxrss", " MiB", ""),
    ):  # fmt: skip
        figure, extra = _spread(figures[key], unit, digits=0 if unit == " MiB" else 2)
        note(f"{name} (median of {runs})", figure, f"{extra}; {target}" if target else extra)


def _spread(values: list[float], unit: str, digits: int = 2) -> tuple[str, str]:
    """The median of several runs, and their range and each run's figure."""
    low, high = min(values), max(values)
    runs = ", ".join(f"{v:,.{digits}f}" for v in values)
    return (
        f"{statistics.median(values):,.{digits}f}{unit}",
        f"[{low:,.{digits}f}–{high:,.{digits}f}] (runs {runs})",
    )


def measure_export(*, campaign_pk: int, env: dict, logs: Path, note, runs: int) -> None:
    """The CSV of one campaign's rewards (the whole mirror), each by export_rewards and by the
    page's download, each by the csv module (before) and by COPY (now), each in a process of
    its own (tests/bench/export_child.py; its peak RSS); beside the floor, `COPY (the
    filter's bare SELECT) TO STDOUT` into a file, and the four files compared."""
    import hashlib

    from django.db import connection

    from rewards.selectors.mirror import RewardFilters, rewards_filter
    from rewards.services.export import _REWARD_FIELDS

    sql, params = (
        rewards_filter(filters=RewardFilters(campaign_ids=(campaign_pk,)))
        .values_list(*_REWARD_FIELDS)
        .query.sql_with_params()
    )
    statement = "COPY (" + connection.ops.compose_sql(sql, params) + ") TO STDOUT WITH CSV HEADER"
    floor_cpu = (0.0, 0.0)

    from tests.bench.export_child import backend_cpu

    def copy_floor() -> tuple[float, int]:
        nonlocal floor_cpu
        connection.ensure_connection()
        backend = connection.connection.info.backend_pid
        started, cpu, server = time.perf_counter(), time.process_time(), backend_cpu(backend)
        with (
            connection.cursor() as cursor,
            open(logs / "copy.csv", "wb") as out_file,
            cursor.copy(statement) as copy,
        ):
            for data in copy:
                out_file.write(data)
        seconds = time.perf_counter() - started
        floor_cpu = (time.process_time() - cpu, backend_cpu(backend) - server)
        with open(logs / "copy.csv", "rb") as written:
            lines = sum(1 for _ in written) - 1
        (logs / "copy.csv").unlink()
        return seconds, lines

    copy_s, lines = copy_floor()
    floor_rate = lines / copy_s
    note("export floor: COPY (same SELECT) TO STDOUT", f"{floor_rate:,.0f} rows/s",
         f"{copy_s:.2f} s, {lines:,} rows; CPU: client {floor_cpu[0]:.2f} s, PostgreSQL "
         f"{floor_cpu[1]:.2f} s")  # fmt: skip
    child = str(BASE_DIR / "tests" / "bench" / "export_child.py")
    # Each child reports its own peak RSS (VmHWM): wait4's ru_maxrss of a child of this
    # process is at least this process's own (see export_child.peak_rss_mib), shown beside.
    _, inherited, out = _child_rss(
        [child, "none", "copy", str(campaign_pk), "-"], env, python_script=True
    )
    note("export floor: a process that starts Django, one query",
         f"{float(out.split()[-1]):.0f} MiB",
         f"peak RSS (VmHWM; ru_maxrss {inherited:.0f} MiB, this process's)")  # fmt: skip
    _, _, out = _child_rss(
        [child, "page-empty", "copy", str(campaign_pk), str(logs / "empty.csv")],
        env,
        python_script=True,
    )
    note("export floor: the page's download of a month without rewards",
         f"{float(out.split()[-1]):.0f} MiB", "peak RSS (VmHWM)")  # fmt: skip

    digests = {}
    figures: dict[str, list[float]] = {}
    doors = (("command", "export_rewards"), ("page", "the page's download"))
    paths = (("python", "csv module, before"), ("copy", "COPY, now"))
    for run in range(1, runs + 1):
        for door, label in doors:
            for via, path in paths:
                # The floor again just before: on a shared machine the ratio is to its neighbour.
                near_s, _ = copy_floor()
                near_cpu = floor_cpu
                out_path = logs / f"export-{door}-{via}.csv"
                process_s, _, out = _child_rss(
                    [child, door, via, str(campaign_pk), str(out_path)], env, python_script=True
                )
                seconds, client_cpu, server_cpu, rss = map(
                    float, out.strip().splitlines()[-1].split()
                )
                digest = hashlib.sha256()
                rows = -1
                with open(out_path, "rb") as written:
                    for line in written:
                        digest.update(line)
                        rows += 1
                out_path.unlink()
                assert rows == lines, (rows, lines)
                digests[(run, door, via)] = digest.hexdigest()
                rate = rows / seconds
                for name, value in (("rate", rate), ("ratio", near_s / seconds), ("rss", rss),
                                    ("floor", lines / near_s)):  # fmt: skip
                    figures.setdefault(f"{door} {via} {name}", []).append(value)
                target = "target < 100 MiB, >= 0.5x COPY" if via == "copy" else "target < 150 MiB"
                note(f"run {run}/{runs} export: CSV of {lines:,} by {label} ({path})",
                     f"{rate:,.0f} rows/s",
                     f"{seconds:.2f} s ({process_s:.2f} s with the process's start), peak RSS "
                     f"(VmHWM) {rss:.0f} MiB, {near_s / seconds:.2f}x COPY's rows/s (COPY just "
                     f"before: {near_s:.2f} s), export/COPY {seconds / near_s:.1f}x; CPU: client "
                     f"{client_cpu:.2f} s, PostgreSQL {server_cpu:.2f} s (COPY's "
                     f"{near_cpu[0]:.2f} s, {near_cpu[1]:.2f} s), by the busier side "
                     f"{max(near_cpu) / max(client_cpu, server_cpu):.2f}x COPY's rows/s; "
                     f"{target}")  # fmt: skip
    assert len(set(digests.values())) == 1, digests
    note("export: every file of every run", "identical",
         f"sha256 {digests[1, 'page', 'copy'][:16]}...")  # fmt: skip
    for door, label in doors:
        for via, path in paths:
            key = f"{door} {via}"
            for name, unit, digits, what in (
                ("floor", " rows/s", 0, "COPY TO STDOUT just before"),
                ("rate", " rows/s", 0, "rows per second"),
                ("ratio", "x", 2, "of COPY's rows/s (target >= 0.5 by COPY)"),
                ("rss", " MiB", 0, "peak RSS, VmHWM (target < 100 MiB by COPY)"),
            ):
                figure, extra = _spread(figures[f"{key} {name}"], unit, digits)
                note(f"export by {label} ({path}): {what} (median of {runs})", figure, extra)


def export_only_setup(*, args) -> int:
    """For --export-only: the mirror and ledger of --home-only (no batches of the home page);
    returns the campaign's primary key."""
    from campaigns.models import Campaign

    home_only_setup(args=args)
    return Campaign.objects.get(campaign_id="big").pk


def home_only_setup(*, args) -> None:
    """For --home-only: the mirror of section 2 (`--browse-rows` rewards over 2026 in one
    campaign) and the ledger of section 3 (`--ledger-rows` sent rows, linked), with the
    month summaries a sync would write."""
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.utils import timezone

    from campaigns import roles
    from campaigns.services import campaign_create
    from rewards.services.sync import mirror_sends_link, monthly_summaries_from_mirror

    manager = User.objects.create_user("bench-manager", password=uuid.uuid4().hex)
    manager.groups.add(Group.objects.get(name=roles.MANAGER))
    big = campaign_create(
        actor=None, name="big", campaign_id="big", environment="sandbox", passcode=PASSCODE
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO rewards_mirroredreward (campaign_id, remote_id, date,
                recipient_email, recipient_id, tree_count, first_seen_at, last_seen_at)
            SELECT %s, 'b' || n,
                   timestamptz '2026-01-01' + make_interval(secs => (n * 31) %% 31536000),
                   'person' || n || '@example.com', '', 1 + n %% 3, now(), now()
            FROM generate_series(1, %s) AS n
            """,
            [big.pk, args.browse_rows],
        )
        cursor.execute(
            "INSERT INTO rewards_batch (campaign_id, mode, source, state, paused_reason,"
            " filename, left_out, created_by_id, created_at, approval_needed, decline_reason,"
            " sent_anyway) VALUES (%s, 'email', 'csv', 'done', '', 'bench.csv', '[]', %s,"
            " now(), false, '', '[]') RETURNING id",
            [big.pk, manager.pk],
        )
        batch_id = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO rewards_send (batch_id, row_number, recipient, name, state, attempts,
                remote_id, url, link_not_recovered, transaction_id, error_message, sent_at,
                updated_at, first_attempt_at)
            SELECT %s, n + 1, 'person' || (n * 97) || '@example.com', 'Person ' || n, 'sent', 1,
                   'b' || (n * 97), '', false, '', '',
                   timestamptz '2026-01-01' + make_interval(secs => (n * 97 * 31) %% 31536000),
                   now(), now()
            FROM generate_series(1, %s) AS n
            """,
            [batch_id, args.ledger_rows],
        )
    mirror_sends_link(campaign_id=big.pk)
    monthly_summaries_from_mirror(campaign_id=big.pk, synced_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE rewards_mirroredreward")


def measure_home(*, args, note) -> None:
    """The home page of each role over the mirror and ledger already made, with forty more
    batches of 200 rows that give its lists something to show: batches of the marketer and of
    others, one paused, two with rows of unknown outcome, ten with failed rows; a campaign
    whose check failed and one whose last sync failed."""
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from campaigns import roles
    from campaigns.models import Campaign
    from campaigns.services import campaign_create

    people = {}
    for name, role in (("admin", roles.ADMIN), ("marketer", roles.MARKETING),
                       ("manager", roles.MANAGER), ("no role", None)):  # fmt: skip
        user = User.objects.create_user(f"bench-home-{name.replace(' ', '-')}")
        if role:
            user.groups.add(Group.objects.get(name=role))
        if role == roles.ADMIN:
            # An admin must use two-factor sign-in (MFA_REQUIRED_ROLES): without it every page
            # is a redirect to its setup.
            from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

            TOTP.activate(user, generate_totp_secret())
        people[name] = user
    big = Campaign.objects.get(campaign_id="big")
    refused = campaign_create(
        actor=None, name="refused", campaign_id="refused", environment="sandbox", passcode="x"
    )
    Campaign.objects.filter(pk=refused.pk).update(
        last_check_ok=False, last_check_message="Wrong passcode (Mokugift error 102)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO rewards_syncrun (campaign_id, year, month, started_at, finished_at,"
            " outcome, rewards_read, created, changed, flagged_missing, error)"
            " VALUES (%s, 2026, 12, now(), now(), 'failed', 0, 0, 0, 0, 'Mokugift timed out')",
            [refused.pk],
        )
        for n in range(40):
            state = "paused" if n == 3 else "done"
            by = people["marketer"].pk if n % 2 else people["admin"].pk
            cursor.execute(
                "INSERT INTO rewards_batch (campaign_id, mode, source, state, paused_reason,"
                " filename, left_out, created_by_id, created_at, approval_needed,"
                " decline_reason, sent_anyway) VALUES (%s, 'email', 'csv', %s, '', 'home.csv',"
                " '[]', %s, now() - make_interval(days => %s), false, '', '[]') RETURNING id",
                [big.pk, state, by, n],
            )
            batch_id = cursor.fetchone()[0]
            # Rows: sent, and for some batches failed (n < 20, even) or unknown (n = 5, 7).
            cursor.execute(
                """
                INSERT INTO rewards_send (batch_id, row_number, recipient, name, state,
                    attempts, remote_id, url, link_not_recovered, transaction_id, error_message,
                    sent_at, updated_at, first_attempt_at, attempt_started_at)
                SELECT %s, r + 1, 'home' || %s || '-' || r || '@example.com', '',
                       CASE WHEN %s AND r %% 10 = 0 THEN 'failed'
                            WHEN %s AND r %% 50 = 0 THEN 'unknown' ELSE 'sent' END, 1,
                       CASE WHEN (%s AND r %% 10 = 0) OR (%s AND r %% 50 = 0) THEN ''
                            ELSE 'h' || %s || '-' || r END, '', false, '', '',
                       now() - make_interval(days => %s), now(), now(), now()
                FROM generate_series(1, 200) AS r
                """,
                [batch_id, n, n < 20 and n % 2 == 0, n in (5, 7)]
                + [n < 20 and n % 2 == 0, n in (5, 7), n, n],
            )
        cursor.execute("UPDATE rewards_send SET sent_at = NULL WHERE state <> 'sent'")
        cursor.execute("VACUUM ANALYZE rewards_send")
        cursor.execute("VACUUM ANALYZE rewards_batch")
    # What the end of each of those batches (and every sync) does: the month aggregate.
    from rewards.services.ledger_months import ledger_months_refresh

    started = time.perf_counter()
    cells = ledger_months_refresh()
    seconds = time.perf_counter() - started
    note("home step: the month aggregate, refreshed", f"{seconds * 1000:.0f} ms",
         f"{cells} rows; at each batch's end and after each sync")  # fmt: skip

    url = reverse("home")
    floor_client = Client()
    floor_client.force_login(
        people["no role"], backend="allauth.account.auth_backends.AuthenticationBackend"
    )
    floor_ms = _median_ms(lambda: _ok(floor_client.get(url)), args.repeat)
    floor_queries = _queries(floor_client, url)
    note("home floor: the same page, no role", f"{floor_ms:.1f} ms",
         f"median; {floor_queries} queries (session, user, permissions, layout)")  # fmt: skip
    for name in ("admin", "marketer", "manager"):
        web = Client()
        web.force_login(people[name], backend="allauth.account.auth_backends.AuthenticationBackend")
        page = _ok(web.get(url)).content.decode()
        assert "Needs attention" in page, page[:2000]
        home_ms = _median_ms(lambda web=web: _ok(web.get(url)), args.repeat)
        with CaptureQueriesContext(connection) as captured:
            web.get(url)
        _profile(web, url, {})
        note(f"home: {name}", f"{home_ms:.1f} ms",
             f"median; target < 50 ms; {len(captured.captured_queries)} queries; "
             f"floor {home_ms - floor_ms:+.1f} ms")  # fmt: skip


def _queries(web, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        web.get(url)
    return len(captured.captured_queries)


def _last_run_seconds() -> float:
    from rewards.models import SyncRun

    run = SyncRun.objects.order_by("-pk").first()
    return (run.finished_at - run.started_at).total_seconds()


def _profile(web, url: str, params: dict) -> None:
    """With BENCH_PROFILE set: the slowest queries of one request."""
    if not os.environ.get("BENCH_PROFILE"):
        return
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        web.get(url, params)
    for query in sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:4]:
        print(f"    {float(query['time']) * 1000:.1f} ms  {query['sql'][:300]}")


def _ok(response):
    assert response.status_code == 200, response.status_code
    return response


if __name__ == "__main__":
    main()
