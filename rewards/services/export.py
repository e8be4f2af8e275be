"""Files of the mirror: the rewards of a filter (CSV, XLSX) and the monthly report (CSV, XLSX).

The pages and `manage.py export_rewards` call the same functions with the same querysets as
the screen (rewards_filter, report_for_year), so a file always holds what the screen shows,
for the whole filter. Rows are read with a server-side cursor (`.iterator(chunk_size=...)`)
and written as they come: a million rows take constant memory. XLSX is written by openpyxl's
write-only workbook, which also streams rows to disk.

Every text cell that a spreadsheet could run as a formula (it begins with = + - @, a tab or a
carriage return) gets a leading apostrophe: a recipient named `=HYPERLINK(...)` is text.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import IO

from django.db.models import QuerySet

from rewards.models import MirroredReward
from rewards.selectors.mirror import Report, ledger_not_in_mokugift

CHUNK_ROWS = 2000
# Bytes of CSV gathered before a piece is handed to the response.
PIECE_SIZE = 64 * 1024
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_STARTS)

# What a cell of our files holds before it is made safe.
type Cell = str | int | float | dt.datetime | None


def text_safe(value: str | None) -> str:
    """Text a spreadsheet shows as text, never runs as a formula (CSV injection): text that
    begins with one of FORMULA_STARTS gets a leading apostrophe. None is empty. The one place
    that decides this, for every file we write (exports, reports, batch results)."""
    if not value:
        return ""
    return "'" + value if value[0] in _FORMULA_FIRST else value


def utc_text(value: dt.datetime | None) -> str:
    """A moment as Mokugift writes dates, "YYYY-MM-DD HH:MM:SS" in UTC; None is empty. For
    files and pages alike (isoformat is several times faster than strftime)."""
    return value.astimezone(dt.UTC).isoformat(" ", "seconds")[:19] if value else ""


def cell_safe(value: Cell) -> str | int | float:
    """A value of any type a spreadsheet shows as it is: text through text_safe, datetimes
    written in UTC, numbers stay numbers (a negative number is not a formula), None is empty."""
    if value is None or isinstance(value, str):
        return text_safe(value)
    if isinstance(value, dt.datetime):
        return utc_text(value)
    return value


# --- The rewards of a filter ----------------------------------------------------------------

REWARD_HEADER = [
    "campaign",
    "reward_id",
    "date_utc",
    "recipient_email",
    "recipient_id",
    "name",
    "trees",
    "source",
    "batch",
    "sender",
    "ledger_state",
    "url",
    "missing_since_utc",
    "last_seen_utc",
]
_REWARD_FIELDS = [
    "campaign__name",
    "remote_id",
    "date",
    "recipient_email",
    "recipient_id",
    "send__name",
    "tree_count",
    "send_id",
    "send__batch_id",
    "send__batch__created_by__username",
    "send__state",
    "send__url",
    "missing_since",
    "last_seen_at",
]


def rewards_export_rows(*, rewards: QuerySet[MirroredReward]) -> Iterator[list[Cell]]:
    """The rows of the file, in the queryset's order, read CHUNK_ROWS at a time, already
    made safe (a million rows: each column gets only the treatment its type needs)."""
    for row in rewards.values_list(*_REWARD_FIELDS).iterator(chunk_size=CHUNK_ROWS):
        (campaign, remote_id, date, email, rid, name, trees, send_id, batch, sender, state, url,
         missing, seen) = row  # fmt: skip
        yield [
            text_safe(campaign),
            text_safe(remote_id),
            utc_text(date),
            text_safe(email),
            text_safe(rid),
            text_safe(name),
            trees,
            "dashboard" if send_id else "elsewhere",
            batch or "",
            text_safe(sender),
            state or "",
            text_safe(url),
            utc_text(missing),
            utc_text(seen),
        ]


def csv_pieces(
    *, header: Sequence[str], rows: Iterable[Sequence[Cell]], safe: bool = False
) -> Iterator[str]:
    """CSV text in pieces of about PIECE_SIZE, every cell made safe (`safe`: the rows are)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row if safe else [cell_safe(value) for value in row])
        if buffer.tell() >= PIECE_SIZE:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def rewards_csv(*, rewards: QuerySet[MirroredReward]) -> Iterator[str]:
    return csv_pieces(header=REWARD_HEADER, rows=rewards_export_rows(rewards=rewards), safe=True)


def xlsx_write(
    *, sheets: Iterable[tuple[str, Sequence[str], Iterable[Sequence[Cell]]]], out: IO[bytes]
) -> None:
    """A workbook of (title, header, rows) sheets, written row by row (write-only mode)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    for title, header, rows in sheets:
        sheet = workbook.create_sheet(title=title[:31])
        sheet.append(list(header))
        for row in rows:
            sheet.append([cell_safe(value) for value in row])
    workbook.save(out)


def rewards_xlsx(*, rewards: QuerySet[MirroredReward], out: IO[bytes]) -> None:
    xlsx_write(
        sheets=[("Rewards", REWARD_HEADER, rewards_export_rows(rewards=rewards))],
        out=out,
    )


# --- The monthly report ---------------------------------------------------------------------

REPORT_TABLES = ("months", "campaigns", "senders", "ledger")


def report_table(*, report: Report, table: str) -> tuple[str, list[str], list[list[Cell]]]:
    """(title, header, rows) of one table of the report, as the page shows it."""
    rows: list[list[Cell]]
    if table == "months":
        rows = [
            [
                m.label,
                m.mokugift_rewards,
                m.mokugift_trees,
                m.ours_rewards,
                m.ours_trees,
                m.difference,
                m.elsewhere,
                m.ledger_not_in_mokugift,
                m.paid_twice,
                "yes" if m.disagrees else "",
            ]
            for m in report.months
        ]
        t = report.totals
        rows.append(
            [
                "Total",
                t.mokugift_rewards,
                t.mokugift_trees,
                t.ours_rewards,
                t.ours_trees,
                t.difference,
                t.elsewhere,
                t.ledger_not_in_mokugift,
                t.paid_twice,
                "",
            ]
        )
        header = [
            "month",
            "mokugift_rewards",
            "mokugift_trees",
            "dashboard_rewards",
            "dashboard_trees",
            "difference",
            "sent_elsewhere",
            "in_ledger_not_in_mokugift",
            "paid_twice",
            "disagree",
        ]
        return f"{report.year} by month", header, rows
    if table == "campaigns":
        header = [
            "campaign",
            "mokugift_rewards",
            "mokugift_trees",
            "dashboard_rewards",
            "dashboard_trees",
        ]
        rows = [
            [
                c["campaign"],
                c["mokugift_rewards"],
                c["mokugift_trees"],
                c["ours_rewards"],
                c["ours_trees"],
            ]
            for c in report.by_campaign
        ]
        return f"{report.year} by campaign", header, rows
    if table == "senders":
        header = ["sender", "dashboard_rewards", "dashboard_trees"]
        rows = [[s["sender"], s["rewards"], s["trees"]] for s in report.by_sender]
        return f"{report.year} by sender", header, rows
    if table == "ledger":
        header = ["sent_at_utc", "campaign", "batch", "sender", "recipient", "name", "reward_id"]
        rows = [
            [
                send.sent_at,
                send.batch.campaign.name,
                send.batch_id,
                send.batch.created_by.username if send.batch.created_by else "",
                send.recipient,
                send.name,
                send.remote_id,
            ]
            # The whole list, not the first rows the page shows.
            for send in ledger_not_in_mokugift(
                year=report.year, campaign_ids=report.campaign_ids
            ).iterator(chunk_size=CHUNK_ROWS)
        ]
        return f"{report.year} not in Mokugift", header, rows
    raise ValueError(f"No report table {table!r}")


def report_csv(*, report: Report, table: str = "months") -> Iterator[str]:
    _, header, rows = report_table(report=report, table=table)
    return csv_pieces(header=header, rows=rows)


def report_xlsx(*, report: Report, out: IO[bytes]) -> None:
    xlsx_write(sheets=[report_table(report=report, table=t) for t in REPORT_TABLES], out=out)
