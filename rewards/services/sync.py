"""The sync: copy what Mokugift lists (`rewards_in_month`, `all_rewards`) into the mirror.

The answer is streamed and written in batches of MIRROR_SYNC_BATCH_SIZE rows, so memory stays
flat for any campaign. Never one query per reward.

PostgreSQL: a batch is COPYed into a temporary staging table, then merged with two statements:
an UPDATE of the rows whose data differ (or that were flagged missing), and an INSERT of the
new ones (`ON CONFLICT DO NOTHING` for a concurrent sync of an overlapping period). Rows that
did not change are not written at all: a sync that finds nothing new costs reads only. The IDs
seen go to a second temporary table; once the answer has been read to its end, the rows of the
period that are not in it are flagged (`missing_since`), never deleted, and `last_seen_at` is
refreshed in one UPDATE for rows last marked seen more than MIRROR_LAST_SEEN_RESOLUTION seconds
ago (so a sync every few minutes does not rewrite every row every time).

SQLite (the embedded default): `bulk_create(update_conflicts=True)` writes every row with the
run's `last_seen_at`, and the rows of the period left with an older one are flagged.

A reward that comes back is unflagged by the UPDATE (it counts as changed).

A first sync of a campaign (no mirrored row yet) only INSERTs, keeps no IDs and flags nothing:
every row it finds is new, and none can be missing.

A sync has bounds: it must be over within MIRROR_SYNC_DEADLINE seconds (the answer's stream
has that deadline too, so a slow-loris answer is cut off) and read at most MIRROR_SYNC_MAX_ROWS
rewards (an endless answer). Past either, or on any failure, the run ends *failed* with the
reason and takes back the rows it added (first seen at its `seen_at`): only an answer read to
its end is the API's answer, and a half-read one may be anything. Rows it changed keep what it
read; no row is flagged missing, no summary written.

Summaries: `rewards_in_month` stores the API's own summary of the month in MonthlySummary. The
summary of `all_rewards` covers all time, which no month row can hold, so after a complete
`all_rewards` sync each month's MonthlySummary is recomputed from the mirror (one GROUP BY):
the mirror then is exactly what Mokugift listed, so the two agree by construction.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth
from django.template.defaultfilters import pluralize
from django.utils import timezone

from campaigns.crypto import DecryptionError
from rewards.models import Batch, MirroredReward, MonthlySummary, Send, SyncRun, column_width
from rewards.services.ledger_months import ledger_months_refresh_after
from webhooks.services import webhook_emit_sync_failed

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

    from campaigns.models import Campaign
    from rewards.mokugift import RewardRecord

logger = logging.getLogger(__name__)

# The first batch is smaller, so that the database starts writing while the answer is still
# being read, instead of waiting for a whole batch to be parsed.
FIRST_BATCH_SIZE = 2_000
# Rows created by one run after which the mirror's statistics are refreshed (then 4x, 16x...).
ANALYZE_FIRST = 10_000
# A "running" run older than this belonged to a worker that died (the task time limit has long
# passed): it no longer blocks the period.
STALE_AFTER = dt.timedelta(seconds=getattr(settings, "CELERY_TASK_TIME_LIMIT", 900) + 60)


class MirrorRefused(ValueError):
    """A listed reward the mirror cannot hold as it is (a value longer than its column)."""


class SyncBoundPassed(Exception):
    """The sync went past MIRROR_SYNC_DEADLINE or MIRROR_SYNC_MAX_ROWS before the end."""


def _rows_capped(records: Iterable[RewardRecord], *, limit: int) -> Iterator[RewardRecord]:
    for count, record in enumerate(records, start=1):
        if count > limit:
            raise SyncBoundPassed(
                f"Mokugift listed more than {limit:,} rewards (MIRROR_SYNC_MAX_ROWS), and the"
                " answer went on: not an answer the mirror takes."
            )
        yield record


def _deadline_passed(seconds: float) -> SyncBoundPassed:
    return SyncBoundPassed(
        f"The sync was not over within MIRROR_SYNC_DEADLINE ({seconds:g} s): stopped there."
    )


# The mirror's columns with a width: a RewardRecord's index, what to call it, the width.
_WIDTHS: list[tuple[Literal[0, 2, 3], str, int]] = [
    (0, "reward ID", column_width(MirroredReward, "remote_id")),
    (2, "recipient email", column_width(MirroredReward, "recipient_email")),
    (3, "recipient ID", column_width(MirroredReward, "recipient_id")),
]


def _widths_check(batch: list[RewardRecord]) -> None:
    """Refuse a batch with a value longer than its column, naming the reward and the field,
    rather than let the database fail the sync in its own words halfway through a COPY."""
    for index, label, width in _WIDTHS:
        if max(map(len, map(itemgetter(index), batch))) > width:
            record = next(r for r in batch if len(r[index]) > width)
            raise MirrorRefused(
                f"Mokugift listed reward {record.id[:40]!r} with a {label} of"
                f" {len(record[index])} characters; the mirror holds at most {width}."
            )


@dataclass
class UpsertCounts:
    read: int = 0
    created: int = 0
    changed: int = 0
    # The campaign had no mirrored row when the sync began: every row it holds now was just
    # written with this sync's last_seen_at, so there is nothing to flag missing.
    fresh: bool = False


def month_bounds(*, year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month in UTC, as the API counts months."""
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=calendar.monthrange(year, month)[1])


def _batches(
    records: Iterable[RewardRecord], size: int, *, first: int | None = None
) -> Iterator[list[RewardRecord]]:
    it = iter(records)
    take = first or size
    while batch := list(islice(it, take)):
        yield batch
        take = size


def _batches_read_ahead(
    records: Iterable[RewardRecord], size: int, *, first: int | None = None, ahead: int = 1
) -> Iterator[list[RewardRecord]]:
    """The batches of `records`, read by a second thread while this one writes the previous
    batch: reading and parsing the answer overlaps the database's work (psycopg waits without
    the GIL). At most `ahead` batches wait in the queue, so memory stays bounded; an error of
    the reader comes out here, and stopping early stops the reader."""
    # A batch, the reader's error, or None: the end.
    batches: queue.Queue[list[RewardRecord] | BaseException | None] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def hand_over(item: list[RewardRecord] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in _batches(records, size, first=first):
                if not hand_over(batch):
                    return
            hand_over(None)
        except BaseException as error:  # handed to the writer, which raises it
            hand_over(error)

    reader = threading.Thread(target=read, name="mirror-sync-reader", daemon=True)
    reader.start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # A reader stuck on the network ends when the caller closes the stream.
        reader.join(timeout=5)


# --- The upsert -----------------------------------------------------------------------------

_STAGE = "mirror_sync_stage"
_SEEN = "mirror_sync_seen"
_MIRROR = MirroredReward._meta.db_table
_STAGE_TYPES = ("varchar", "timestamptz", "varchar", "varchar", "int4")
# Table names below are constants of this module, never input: hence the noqa S608s.


def _pg_temp_tables(cursor: CursorWrapper) -> None:
    # Temporary tables live as long as the connection, and only it sees them.
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ("
        " remote_id varchar(100) NOT NULL, date timestamptz NOT NULL,"
        " recipient_email varchar(254) NOT NULL, recipient_id varchar(254) NOT NULL,"
        " tree_count integer NOT NULL)"
    )
    # No index: it is read once, by the hash anti-join of _pg_seen_close (after an ANALYZE),
    # and an index would cost a write per reward read.
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_SEEN} (remote_id varchar(100) NOT NULL)")


def _pg_upsert(
    *, campaign_id: int, batch: list[RewardRecord], seen_at: dt.datetime, fresh: bool = False
) -> tuple[int, int]:
    """Write one batch: UPDATE the rows that differ, INSERT the new ones.

    `fresh`: the campaign had no mirrored row when this sync began (a first sync), so there is
    nothing to compare or update: only the INSERT runs, and ON CONFLICT alone keeps a row that
    appeared meanwhile (an ID listed twice, a month sync running beside this one). Nor is
    anything to be flagged missing afterwards, so the IDs seen are not kept.
    """
    params: dict[str, int | dt.datetime] = {"campaign": campaign_id, "seen": seen_at}
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {_STAGE}")
        # Binary: psycopg sends the values as they are, without formatting each as text
        # (about a third of the Python time of a text COPY, and this thread shares the GIL
        # with the one parsing the answer). A RewardRecord is the row, in the stage's order.
        with cursor.copy(
            f"COPY {_STAGE} (remote_id, date, recipient_email, recipient_id, tree_count)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_STAGE_TYPES)
            for record in batch:
                copy.write_row(record)
        if fresh:
            cursor.execute(
                f"""
                INSERT INTO {_MIRROR} (campaign_id, remote_id, date, recipient_email,
                    recipient_id, tree_count, first_seen_at, last_seen_at, missing_since)
                SELECT %(campaign)s, s.remote_id, s.date, s.recipient_email, s.recipient_id,
                       s.tree_count, %(seen)s, %(seen)s, NULL
                  FROM {_STAGE} AS s
                ON CONFLICT (campaign_id, remote_id) DO NOTHING
                """,  # noqa: S608
                params,
            )
            inserted: int = cursor.rowcount
            return inserted, 0
        cursor.execute(f"INSERT INTO {_SEEN} (remote_id) SELECT remote_id FROM {_STAGE}")  # noqa: S608
        # One join of the batch with the mirror finds both the rows that differ and the new
        # ones. DISTINCT ON: an answer listing one ID twice must not touch a row twice.
        cursor.execute(
            f"""
            WITH s AS (
                SELECT DISTINCT ON (remote_id) * FROM {_STAGE} ORDER BY remote_id
            ), j AS MATERIALIZED (
                SELECT s.*, m.id AS mirror_id,
                       ((m.date, m.recipient_email, m.recipient_id, m.tree_count)
                        IS DISTINCT FROM (s.date, s.recipient_email, s.recipient_id,
                                          s.tree_count)
                        OR m.missing_since IS NOT NULL) AS differs
                  FROM s LEFT JOIN {_MIRROR} AS m
                    ON m.campaign_id = %(campaign)s AND m.remote_id = s.remote_id
            ), changed AS (
                UPDATE {_MIRROR} AS m SET
                    date = j.date, recipient_email = j.recipient_email,
                    recipient_id = j.recipient_id, tree_count = j.tree_count,
                    last_seen_at = %(seen)s, missing_since = NULL
                  FROM j
                 WHERE m.id = j.mirror_id AND j.differs
                RETURNING 1
            ), created AS (
                INSERT INTO {_MIRROR} (campaign_id, remote_id, date, recipient_email,
                    recipient_id, tree_count, first_seen_at, last_seen_at, missing_since)
                SELECT %(campaign)s, j.remote_id, j.date, j.recipient_email, j.recipient_id,
                       j.tree_count, %(seen)s, %(seen)s, NULL
                  FROM j WHERE j.mirror_id IS NULL
                ON CONFLICT (campaign_id, remote_id) DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM created), (SELECT count(*) FROM changed)
            """,  # noqa: S608
            params,
        )
        created, changed = cursor.fetchone()
        return created, changed


def _pg_seen_close(
    *,
    campaign_id: int,
    seen_at: dt.datetime,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> int:
    """After a complete answer: flag the period's rows it did not list, refresh last_seen_at."""
    resolution = dt.timedelta(seconds=getattr(settings, "MIRROR_LAST_SEEN_RESOLUTION", 3600))
    params: dict[str, int | dt.datetime | None] = {
        "campaign": campaign_id,
        "seen": seen_at,
        "stale": seen_at - resolution,
        "start": start,
        "end": end,
    }
    period = "AND m.date >= %(start)s AND m.date < %(end)s" if start is not None else ""
    with connection.cursor() as cursor:
        # Statistics, so that the anti-join below hashes the IDs instead of looping over them.
        cursor.execute(f"ANALYZE {_SEEN}")
        cursor.execute(
            f"""
            UPDATE {_MIRROR} AS m SET missing_since = %(seen)s
             WHERE m.campaign_id = %(campaign)s AND m.missing_since IS NULL {period}
               AND NOT EXISTS (SELECT 1 FROM {_SEEN} AS s WHERE s.remote_id = m.remote_id)
            """,  # noqa: S608
            params,
        )
        flagged: int = cursor.rowcount
        cursor.execute(
            f"""
            UPDATE {_MIRROR} AS m SET last_seen_at = %(seen)s
             WHERE m.campaign_id = %(campaign)s AND m.last_seen_at < %(stale)s {period}
               AND EXISTS (SELECT 1 FROM {_SEEN} AS s WHERE s.remote_id = m.remote_id)
            """,  # noqa: S608
            params,
        )
    return flagged


def _portable_upsert(
    *, campaign_id: int, batch: list[RewardRecord], seen_at: dt.datetime, fresh: bool = False
) -> tuple[int, int]:
    # `fresh` changes nothing here: one bulk upsert per batch serves both cases.
    rows = {r.id: r for r in batch}
    before = {
        remote_id: (date, email, rid, trees, missing)
        for remote_id, date, email, rid, trees, missing in MirroredReward.objects.filter(
            campaign_id=campaign_id, remote_id__in=list(rows)
        ).values_list(
            "remote_id", "date", "recipient_email", "recipient_id", "tree_count", "missing_since"
        )
    }
    created = changed = 0
    for r in rows.values():
        old = before.get(r.id)
        if old is None:
            created += 1
        elif old[:4] != (r.date, r.recipient_email, r.recipient_id, r.tree_count) or old[4]:
            changed += 1
    MirroredReward.objects.bulk_create(
        [
            MirroredReward(
                campaign_id=campaign_id,
                remote_id=r.id,
                date=r.date,
                recipient_email=r.recipient_email,
                recipient_id=r.recipient_id,
                tree_count=r.tree_count,
                first_seen_at=seen_at,
                last_seen_at=seen_at,
                missing_since=None,
            )
            for r in rows.values()
        ],
        update_conflicts=True,
        unique_fields=["campaign", "remote_id"],
        update_fields=[
            "date",
            "recipient_email",
            "recipient_id",
            "tree_count",
            "last_seen_at",
            "missing_since",
        ],
    )
    return created, changed


def mirror_records_save(
    *,
    campaign_id: int,
    records: Iterable[RewardRecord],
    seen_at: dt.datetime,
    run: SyncRun | None = None,
    batch_size: int | None = None,
    deadline: tuple[float, float] | None = None,
) -> UpsertCounts:
    """Upsert `records` (any iterable, consumed lazily) into the mirror, in bulk batches.
    With `run`, its counts are saved after every batch so the page can show progress.
    `deadline` (time.monotonic() to be over by, its seconds): SyncBoundPassed after the batch
    that ends past it."""
    size = batch_size or settings.MIRROR_SYNC_BATCH_SIZE
    upsert = _pg_upsert if connection.vendor == "postgresql" else _portable_upsert
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            _pg_temp_tables(cursor)
            cursor.execute(f"TRUNCATE {_SEEN}")
    if connection.vendor == "sqlite":
        # SQLite allows 32,766 variables in one statement; a row takes 9.
        size = min(size, 3000)
    analyze_at = ANALYZE_FIRST
    fresh = not MirroredReward.objects.filter(campaign_id=campaign_id).exists()
    counts = UpsertCounts(fresh=fresh)
    first = min(size, FIRST_BATCH_SIZE)
    for batch in _batches_read_ahead(records, size, first=first):
        _widths_check(batch)
        with transaction.atomic():
            created, changed = upsert(
                campaign_id=campaign_id, batch=batch, seen_at=seen_at, fresh=fresh
            )
        counts.read += len(batch)
        counts.created += created
        counts.changed += changed
        if counts.created >= analyze_at and connection.vendor == "postgresql" and not fresh:
            # The planner's statistics lag behind a mirror that grows fast (a new month of a
            # big campaign): believing the campaign holds a hundred rows, it would hash all
            # of them, or loop over them, for every batch. Fresh statistics at 10k, 40k,
            # 160k... new rows keep each batch on the unique index. (A fresh sync's INSERT
            # plans nothing on the mirror.)
            _pg_analyze()
            analyze_at *= 4
        if run is not None:
            SyncRun.objects.filter(pk=run.pk).update(
                rewards_read=counts.read, created=counts.created, changed=counts.changed
            )
        if deadline is not None and time.monotonic() > deadline[0]:
            raise _deadline_passed(deadline[1])
    if fresh and counts.created >= ANALYZE_FIRST and connection.vendor == "postgresql":
        # Once, at the end: for the steps after the sync (linking, summaries) and the pages.
        _pg_analyze()
    return counts


def _pg_analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {_MIRROR}")


def mirror_missing_flag(
    *,
    campaign_id: int,
    seen_at: dt.datetime,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> int:
    """Flag the period's rewards this sync did not see, and note when the others were seen.
    Call only after a complete answer, right after mirror_records_save (on PostgreSQL the IDs
    seen are in a temporary table of this connection), and only when it was not `fresh`."""
    if connection.vendor == "postgresql":
        return _pg_seen_close(campaign_id=campaign_id, seen_at=seen_at, start=start, end=end)
    rewards = MirroredReward.objects.filter(
        campaign_id=campaign_id, last_seen_at__lt=seen_at, missing_since__isnull=True
    )
    if start is not None:
        rewards = rewards.filter(date__gte=start, date__lt=end)
    return rewards.update(missing_since=seen_at)


def mirror_sends_link(*, campaign_id: int) -> int:
    """Link mirrored rewards to our ledger rows by (campaign, remote_id), in one UPDATE.

    A join, not a subquery per mirrored row: right after a big send the ledger's statistics
    lag, and a per-row subquery planned from them can scan a whole batch for each reward.
    A remote_id names at most one ledger row (send_remote_id_unique).
    """
    send_table, batch_table = Send._meta.db_table, Batch._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {_MIRROR} SET send_id = ours.id
              FROM (SELECT s.id, s.remote_id FROM {send_table} AS s
                      JOIN {batch_table} AS b ON b.id = s.batch_id
                     WHERE b.campaign_id = %(campaign)s AND s.remote_id <> '') AS ours
             WHERE {_MIRROR}.campaign_id = %(campaign)s AND {_MIRROR}.send_id IS NULL
               AND {_MIRROR}.remote_id = ours.remote_id
            """,  # noqa: S608
            {"campaign": campaign_id},
        )
        linked: int = cursor.rowcount
        return linked


def monthly_summaries_from_mirror(*, campaign_id: int, synced_at: dt.datetime) -> int:
    """Recompute every month's summary of a campaign from its mirror (after `all_rewards`)."""
    # Grouped by the month's first instant, one expression: PostgreSQL estimates as many
    # groups of EXTRACT(year), EXTRACT(month) as rows, and sorted 200,000 rows on disk for them.
    months = (
        MirroredReward.objects.filter(campaign_id=campaign_id, missing_since__isnull=True)
        .annotate(start=TruncMonth("date", tzinfo=dt.UTC))
        .values("start")
        .annotate(rewards=Count("pk"), trees=Sum("tree_count"))
        .order_by()
    )
    summaries = [
        MonthlySummary(
            campaign_id=campaign_id,
            year=row["start"].year,
            month=row["start"].month,
            reward_count=row["rewards"],
            tree_count=row["trees"] or 0,
            synced_at=synced_at,
        )
        for row in months
    ]
    with transaction.atomic():
        # Months that no longer hold any reward say so (zero), rather than keep old numbers.
        MonthlySummary.objects.filter(campaign_id=campaign_id).update(
            reward_count=0, tree_count=0, synced_at=synced_at
        )
        MonthlySummary.objects.bulk_create(
            summaries,
            update_conflicts=True,
            unique_fields=["campaign", "year", "month"],
            update_fields=["reward_count", "tree_count", "synced_at"],
        )
    return len(summaries)


# --- The run --------------------------------------------------------------------------------


def _run_claim(*, campaign: Campaign, year: int | None, month: int | None) -> SyncRun:
    """A new SyncRun: running if this period was free, skipped if another sync holds it."""
    period = SyncRun.objects.filter(campaign=campaign, year=year, month=month)
    period.filter(
        outcome=SyncRun.Outcome.RUNNING, started_at__lt=timezone.now() - STALE_AFTER
    ).update(
        outcome=SyncRun.Outcome.FAILED,
        finished_at=timezone.now(),
        error="Abandoned: the worker running it stopped before it finished.",
    )
    try:
        with transaction.atomic():
            return SyncRun.objects.create(campaign=campaign, year=year, month=month)
    except IntegrityError:
        # The partial unique constraint: another run of this period is under way.
        return SyncRun.objects.create(
            campaign=campaign,
            year=year,
            month=month,
            outcome=SyncRun.Outcome.SKIPPED,
            finished_at=timezone.now(),
        )


def _error_text(error: BaseException, campaign: Campaign) -> str:
    message = f"{type(error).__name__}: {error}"[:2000]
    try:
        passcode = campaign.passcode
    except DecryptionError:
        return message  # no one could read the passcode, so nothing can have quoted it
    if passcode:
        message = message.replace(passcode, "[passcode]")
    return message


def _run_take_back(*, campaign_id: int, seen_at: dt.datetime) -> int:
    """What a failed run leaves: the rows it added are deleted, its staging tables emptied.
    Returns how many rows were deleted."""
    try:
        with transaction.atomic():
            # A row first seen by this run has this run's seen_at (a later run never moves it).
            removed, _ = MirroredReward.objects.filter(
                campaign_id=campaign_id, first_seen_at=seen_at
            ).delete()
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    _pg_temp_tables(cursor)
                    cursor.execute(f"TRUNCATE {_STAGE}, {_SEEN}")
    except DatabaseError:
        # The database that failed the run may fail this too: the run is still marked failed.
        logger.exception("Sync of campaign %s: its rows could not be taken back", campaign_id)
        return 0
    return removed


def _run(*, campaign: Campaign, year: int | None, month: int | None) -> SyncRun:
    from rewards.mokugift import DeadlineExceeded, MokugiftClient, MokugiftError

    run = _run_claim(campaign=campaign, year=year, month=month)
    if run.outcome == SyncRun.Outcome.SKIPPED:
        return run
    seen_at = timezone.now()
    seconds = settings.MIRROR_SYNC_DEADLINE
    deadline = (time.monotonic() + seconds, seconds)
    start = end = None
    try:
        client = MokugiftClient.for_campaign(campaign)
        # The stream has the sync's deadline too: a slow answer is cut off where it stands.
        if year is not None and month is not None:
            start, end = month_bounds(year=year, month=month)
            opened = client.rewards_in_month(month=month, year=year, deadline=seconds)
        else:
            opened = client.all_rewards(deadline=seconds)
        # closing(), not the stream's own `with`, which would send the request and read the
        # answer's start here: the reader thread of mirror_records_save does all of it, so one
        # thread alone uses the parser (lxml's are not to be shared between threads).
        with closing(opened) as stream:
            counts = mirror_records_save(
                campaign_id=campaign.pk,
                records=_rows_capped(stream, limit=settings.MIRROR_SYNC_MAX_ROWS),
                seen_at=seen_at,
                run=run,
                deadline=deadline,
            )
            summary = stream.summary
        # Only a complete answer says what is gone; a first one finds nothing gone.
        flagged = 0
        if not counts.fresh:
            flagged = mirror_missing_flag(
                campaign_id=campaign.pk, seen_at=seen_at, start=start, end=end
            )
        mirror_sends_link(campaign_id=campaign.pk)
        if year is not None and month is not None and summary is not None:
            MonthlySummary.objects.update_or_create(
                campaign=campaign,
                year=year,
                month=month,
                defaults={
                    "reward_count": summary.reward_count,
                    "tree_count": summary.tree_count,
                    "synced_at": seen_at,
                },
            )
        elif month is None:
            monthly_summaries_from_mirror(campaign_id=campaign.pk, synced_at=seen_at)
    except (MokugiftError, DecryptionError, OSError, ValueError, SyncBoundPassed) as error:
        # MokugiftError covers the API's errors and transport failures.
        logger.warning("Sync of campaign %s failed: %s", campaign.pk, type(error).__name__)
        reason = _error_text(error, campaign)
        if isinstance(error, DeadlineExceeded):
            reason = f"{_deadline_passed(seconds)} {reason}"
        _run_failed(run=run, reason=reason, seen_at=seen_at)
    except BaseException as error:
        _run_failed(run=run, reason=_error_text(error, campaign), seen_at=seen_at)
        raise
    else:
        SyncRun.objects.filter(pk=run.pk).update(
            outcome=SyncRun.Outcome.SUCCEEDED,
            finished_at=timezone.now(),
            rewards_read=counts.read,
            created=counts.created,
            changed=counts.changed,
            flagged_missing=flagged,
        )
        # The home page's trees of ours come from the links this sync made.
        ledger_months_refresh_after(f"the sync of campaign {campaign.pk}")
    run.refresh_from_db()
    return run


def _run_failed(*, run: SyncRun, reason: str, seen_at: dt.datetime) -> None:
    fields = {}
    removed = _run_take_back(campaign_id=run.campaign_id, seen_at=seen_at)
    if removed:
        were = "were" if removed != 1 else "was"
        reason = (
            f"{reason.rstrip('.')}. The {removed:,} reward{pluralize(removed)} it had added to"
            f" the mirror {were} taken out again."
        )
        fields["created"] = 0
    SyncRun.objects.filter(pk=run.pk).update(
        outcome=SyncRun.Outcome.FAILED, finished_at=timezone.now(), error=reason, **fields
    )
    webhook_emit_sync_failed(run=run)


def rewards_sync_month(*, campaign: Campaign, year: int, month: int) -> SyncRun:
    """Mirror one month of a campaign. A second call while one runs records `skipped`."""
    return _run(campaign=campaign, year=year, month=month)


def rewards_sync_all(*, campaign: Campaign) -> SyncRun:
    """Mirror everything a campaign ever made (`all_rewards`)."""
    return _run(campaign=campaign, year=None, month=None)


def sync_enqueue(*, campaign_ids: Iterable[int], year: int | None, month: int | None) -> None:
    """Queue a sync of a month (or of everything) per campaign, once the transaction commits."""
    from rewards.services.enqueue import task_publish
    from rewards.tasks.sync import sync_campaign_all, sync_campaign_month

    for pk in campaign_ids:
        if year is not None and month is not None:
            transaction.on_commit(
                partial(task_publish, sync_campaign_month, args=[pk, year, month])
            )
        else:
            transaction.on_commit(partial(task_publish, sync_campaign_all, args=[pk]))
