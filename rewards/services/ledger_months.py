"""Keeps LedgerMonth, the home page's aggregate of our ledger by month (rewards/models/overview.py).

`ledger_months_refresh` rewrites the whole aggregate (every campaign, the last LEDGER_MONTHS
months) from the ledger, in one transaction: two grouped queries over the window
(selectors.overview.ledger_cells) and one insert. It runs at the end of each batch
(sending.batch_finish_if_done, after the commit) and after each sync that succeeded
(sync._run), so failures and trees are current within minutes; rows sent since are counted
live by the overview. Any moment is a right moment to run it: it counts, it never adds up.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from rewards.models import LedgerMonth
from rewards.selectors.overview import ledger_cells

logger = logging.getLogger(__name__)

# The home page shows twelve months; one more so that a refresh just after a month's turn
# still holds the month that left the chart's left edge (harmless, and cheap).
LEDGER_MONTHS = 13
# Two refreshes at once must not both delete and both insert: they take turns (PostgreSQL).
_LOCK_KEY = 0x4C4D4F4E  # "LMON"


def ledger_window_start(*, now: dt.datetime, months: int = LEDGER_MONTHS) -> dt.datetime:
    """The first instant (UTC) of the month `months - 1` months before now's."""
    now = now.astimezone(dt.UTC)
    index = now.year * 12 + now.month - 1 - (months - 1)
    year, month = divmod(index, 12)
    return dt.datetime(year, month + 1, 1, tzinfo=dt.UTC)


def ledger_months_refresh(*, now: dt.datetime | None = None) -> int:
    """Rewrite the aggregate from the ledger; the number of rows written."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        # After the lock: a refresh that waited counts what the one before it wrote.
        now = now or timezone.now()
        start = ledger_window_start(now=now)
        # Deleted first: on SQLite this takes the write lock before anything is read.
        LedgerMonth.objects.all().delete()
        cells = ledger_cells(start=start, end=now)
        LedgerMonth.objects.bulk_create(
            LedgerMonth(
                campaign_id=campaign_id,
                sender_id=sender_id,
                year=year,
                month=month,
                sent=sent,
                trees=trees,
                failed=failed,
                refreshed_at=now,
            )
            for (campaign_id, sender_id, year, month), (sent, trees, failed) in cells.items()
        )
    return len(cells)


def ledger_months_refresh_after(what: str) -> None:
    """The refresh the end of a batch and a sync ask for: a failure is logged, never theirs
    (the batch is done and the sync succeeded all the same; the next refresh catches up, and
    the home page counts rows sent since the last one from the ledger meanwhile)."""
    try:
        ledger_months_refresh()
    except DatabaseError:
        logger.exception("The home page's month figures were not refreshed after %s", what)
