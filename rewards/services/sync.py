"""The sync: copy what Mokugift lists (`rewards_in_month`, `all_rewards`) into the mirror.

The answer is streamed and written in batches of MIRROR_SYNC_BATCH_SIZE rows, so memory stays
flat for any campaign. On PostgreSQL a batch is COPYed into a temporary staging table and merged
with one `INSERT ... SELECT ... ON CONFLICT DO UPDATE`; on SQLite (the embedded default) it goes
through `bulk_create(update_conflicts=True)`. Never one query per reward.

Every listed row gets `last_seen_at` = the run's timestamp, so once the answer is read to its
end, the rows of the period that still carry an older timestamp are exactly those Mokugift no
longer lists: they are flagged (`missing_since`), never deleted. A reward that comes back is
unflagged by the same upsert.

Summaries: `rewards_in_month` stores the API's own summary of the month in MonthlySummary. The
summary of `all_rewards` covers all time, which no month row can hold, so after a complete
`all_rewards` sync each month's MonthlySummary is recomputed from the mirror (one GROUP BY):
the mirror then is exactly what Mokugift listed, so the two agree by construction.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Subquery, Sum
from django.db.models.functions import ExtractMonth, ExtractYear
from django.utils import timezone

from rewards.models import MirroredReward, MonthlySummary, Send, SyncRun

if TYPE_CHECKING:
    from campaigns.models import Campaign
    from rewards.mokugift import RewardRecord

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000
# A "running" run older than this belonged to a worker that died (the task time limit has long
# passed): it no longer blocks the period.
STALE_AFTER = dt.timedelta(seconds=getattr(settings, "CELERY_TASK_TIME_LIMIT", 900) + 60)


@dataclass
class UpsertCounts:
    read: int = 0
    created: int = 0
    changed: int = 0


def month_bounds(*, year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month in UTC, as the API counts months."""
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=calendar.monthrange(year, month)[1])


def _batches(records: Iterable[RewardRecord], size: int) -> Iterator[list[RewardRecord]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch


# --- The upsert -----------------------------------------------------------------------------

_STAGE = "mirror_sync_stage"
_MIRROR = MirroredReward._meta.db_table


def _pg_upsert(*, campaign_id: int, batch: list[RewardRecord], seen_at: dt.datetime) -> tuple:
    with connection.cursor() as cursor:
        # A temporary table lives as long as the connection; each batch empties it first.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ("
            " remote_id varchar(100) NOT NULL, date timestamptz NOT NULL,"
            " recipient_email varchar(254) NOT NULL, recipient_id varchar(254) NOT NULL,"
            " tree_count integer NOT NULL)"
        )
        cursor.execute(f"TRUNCATE {_STAGE}")
        with cursor.copy(
            f"COPY {_STAGE} (remote_id, date, recipient_email, recipient_id, tree_count) FROM STDIN"
        ) as copy:
            for r in batch:
                copy.write_row((r.id, r.date, r.recipient_email, r.recipient_id, r.tree_count))
        # DISTINCT ON: an answer listing one ID twice must not make ON CONFLICT touch a row
        # twice in one statement (PostgreSQL refuses that).
        # RETURNING (xmax = 0) is true for a row this statement inserted. A row is updated only
        # if something in it changed, or to record that it was seen (last_seen_at): `changed`
        # is counted from the comparison made before the update, in the same statement.
        cursor.execute(
            f"""
            WITH stage AS (
                SELECT DISTINCT ON (remote_id) * FROM {_STAGE} ORDER BY remote_id
            ), before AS (
                SELECT count(*) AS n FROM stage s JOIN {_MIRROR} m
                  ON m.campaign_id = %(campaign)s AND m.remote_id = s.remote_id
                 WHERE (m.date, m.recipient_email, m.recipient_id, m.tree_count)
                       IS DISTINCT FROM (s.date, s.recipient_email, s.recipient_id, s.tree_count)
                    OR m.missing_since IS NOT NULL
            ), up AS (
                INSERT INTO {_MIRROR} AS m (campaign_id, remote_id, date, recipient_email,
                    recipient_id, tree_count, first_seen_at, last_seen_at, missing_since)
                SELECT %(campaign)s, remote_id, date, recipient_email, recipient_id, tree_count,
                       %(seen)s, %(seen)s, NULL
                  FROM stage
                ON CONFLICT (campaign_id, remote_id) DO UPDATE SET
                    date = EXCLUDED.date, recipient_email = EXCLUDED.recipient_email,
                    recipient_id = EXCLUDED.recipient_id, tree_count = EXCLUDED.tree_count,
                    last_seen_at = EXCLUDED.last_seen_at, missing_since = NULL
                RETURNING (xmax = 0) AS inserted
            )
            SELECT (SELECT count(*) FROM up WHERE inserted), (SELECT n FROM before)
            """,  # noqa: S608  (table names are constants of this module)
            {"campaign": campaign_id, "seen": seen_at},
        )
        created, changed = cursor.fetchone()
    return created, changed


def _portable_upsert(*, campaign_id: int, batch: list[RewardRecord], seen_at: dt.datetime):
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
) -> UpsertCounts:
    """Upsert `records` (any iterable, consumed lazily) into the mirror, in bulk batches.
    With `run`, its counts are saved after every batch so the page can show progress."""
    size = batch_size or getattr(settings, "MIRROR_SYNC_BATCH_SIZE", DEFAULT_BATCH_SIZE)
    upsert = _pg_upsert if connection.vendor == "postgresql" else _portable_upsert
    if connection.vendor == "sqlite":
        # SQLite allows 32,766 variables in one statement; a row takes 9.
        size = min(size, 3000)
    counts = UpsertCounts()
    for batch in _batches(records, size):
        with transaction.atomic():
            created, changed = upsert(campaign_id=campaign_id, batch=batch, seen_at=seen_at)
        counts.read += len(batch)
        counts.created += created
        counts.changed += changed
        if run is not None:
            SyncRun.objects.filter(pk=run.pk).update(
                rewards_read=counts.read, created=counts.created, changed=counts.changed
            )
    return counts


def mirror_missing_flag(
    *,
    campaign_id: int,
    seen_at: dt.datetime,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> int:
    """Flag the period's rewards this sync did not see. Call only after a complete answer."""
    rewards = MirroredReward.objects.filter(
        campaign_id=campaign_id, last_seen_at__lt=seen_at, missing_since__isnull=True
    )
    if start is not None:
        rewards = rewards.filter(date__gte=start, date__lt=end)
    return rewards.update(missing_since=seen_at)


def mirror_sends_link(*, campaign_id: int) -> int:
    """Link mirrored rewards to our ledger rows by (campaign, remote_id), in one UPDATE."""
    sends = Send.objects.filter(
        batch__campaign_id=campaign_id, remote_id=OuterRef("remote_id")
    ).exclude(remote_id="")
    return (
        MirroredReward.objects.filter(campaign_id=campaign_id, send__isnull=True)
        .filter(Exists(sends))
        .update(send_id=Subquery(sends.values("pk")[:1]))
    )


def monthly_summaries_from_mirror(*, campaign_id: int, synced_at: dt.datetime) -> int:
    """Recompute every month's summary of a campaign from its mirror (after `all_rewards`)."""
    months = (
        MirroredReward.objects.filter(campaign_id=campaign_id, missing_since__isnull=True)
        .annotate(y=ExtractYear("date", tzinfo=dt.UTC), m=ExtractMonth("date", tzinfo=dt.UTC))
        .values("y", "m")
        .annotate(rewards=Count("pk"), trees=Sum("tree_count"))
        .order_by()
    )
    summaries = [
        MonthlySummary(
            campaign_id=campaign_id,
            year=row["y"],
            month=row["m"],
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


def _error_text(error: Exception, campaign: Campaign) -> str:
    message = f"{type(error).__name__}: {error}"[:2000]
    if campaign.passcode:
        message = message.replace(campaign.passcode, "[passcode]")
    return message


def _run(*, campaign: Campaign, year: int | None, month: int | None) -> SyncRun:
    from rewards.mokugift import MokugiftClient, MokugiftError

    run = _run_claim(campaign=campaign, year=year, month=month)
    if run.outcome == SyncRun.Outcome.SKIPPED:
        return run
    seen_at = timezone.now()
    start = end = None
    try:
        client = MokugiftClient.for_campaign(campaign)
        if month is not None:
            start, end = month_bounds(year=year, month=month)
            opened = client.rewards_in_month(month=month, year=year)
        else:
            opened = client.all_rewards()
        with opened as stream:
            counts = mirror_records_save(
                campaign_id=campaign.pk, records=stream, seen_at=seen_at, run=run
            )
            summary = stream.summary
        # Only a complete answer says what is gone.
        flagged = mirror_missing_flag(
            campaign_id=campaign.pk, seen_at=seen_at, start=start, end=end
        )
        mirror_sends_link(campaign_id=campaign.pk)
        if month is not None and summary is not None:
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
    except (MokugiftError, OSError, ValueError) as error:
        # MokugiftError covers the API's errors and transport failures; the counts already
        # saved stay (every batch that was written is true).
        logger.warning("Sync of campaign %s failed: %s", campaign.pk, type(error).__name__)
        SyncRun.objects.filter(pk=run.pk).update(
            outcome=SyncRun.Outcome.FAILED,
            finished_at=timezone.now(),
            error=_error_text(error, campaign),
        )
    except BaseException as error:
        SyncRun.objects.filter(pk=run.pk).update(
            outcome=SyncRun.Outcome.FAILED,
            finished_at=timezone.now(),
            error=_error_text(error, campaign),
        )
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
    run.refresh_from_db()
    return run


def rewards_sync_month(*, campaign: Campaign, year: int, month: int) -> SyncRun:
    """Mirror one month of a campaign. A second call while one runs records `skipped`."""
    return _run(campaign=campaign, year=year, month=month)


def rewards_sync_all(*, campaign: Campaign) -> SyncRun:
    """Mirror everything a campaign ever made (`all_rewards`)."""
    return _run(campaign=campaign, year=None, month=None)


def sync_enqueue(*, campaign_ids: Iterable[int], year: int | None, month: int | None) -> None:
    """Queue a sync of a month (or of everything) per campaign, once the transaction commits."""
    from rewards.tasks.sync import sync_campaign_all, sync_campaign_month

    for pk in campaign_ids:
        if month is None:
            transaction.on_commit(partial(sync_campaign_all.delay, pk))
        else:
            transaction.on_commit(partial(sync_campaign_month.delay, pk, year, month))
