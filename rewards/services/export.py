"""Files of the mirror: the rewards of a filter (CSV, XLSX) and the monthly report (CSV, XLSX).

The pages and `manage.py export_rewards` call the same functions with the same querysets as
the screen (rewards_filter, report_for_year), so a file always holds what the screen shows,
for the whole filter. Rows are read with a server-side cursor (`.iterator(chunk_size=...)`)
and written as they come: a million rows take constant memory. XLSX is written by openpyxl's
write-only workbook, which also streams rows to disk.

A CSV's header is the columns' short names (stable, for scripts); an XLSX has each column's
title in words, the header row frozen, widths that fit, thousands separators on counts and
real dates (UTC) with a date format: it is read by people.

Every text cell that a spreadsheet could run as a formula (it begins with = + - @, a tab or a
carriage return) gets a leading apostrophe: a recipient named `=HYPERLINK(...)` is text.

On PostgreSQL the CSV of the rewards is not written by Python: the same filtered queryset,
with each cell formatted and neutralised in SQL (TextSafe and UtcText, the SQL twins of
text_safe and utc_text, beside them below and tested against them), is streamed by
`COPY (SELECT ...) TO STDOUT` through psycopg's copy support, piece by piece, in constant
memory. Its bytes are the Python writer's, byte for byte (tests/mirror/test_export_copy.py):
an empty cell is NULL (COPY quotes an empty string), and COPY's line feed after each row
becomes the csv module's CR LF (see ROW_END). SQLite keeps the Python path.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import io
import itertools
from collections.abc import Buffer, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast

from django.db import connections
from django.db.models import Case, DateTimeField, F, Func, QuerySet, TextField, Value, When
from django.db.models.functions import NullIf

from audit.models import Kind
from audit.services import audit_record
from rewards.models import Batch, MirroredReward, Send
from rewards.selectors.mirror import Report, ledger_not_in_mokugift

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.http import HttpRequest

    from campaigns.models import Campaign

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


# --- The SQL twins of text_safe and utc_text (PostgreSQL), for the COPY path -------------------
# Same rule, built from the same FORMULA_STARTS; tests/mirror/test_export_copy.py runs both
# over the same values and wants the same text (as COPY writes it). Their "empty" is NULL:
# COPY writes a NULL as nothing and an empty string as "", where the csv module writes nothing
# for both. Written for speed: each is paid per cell of a million rows.


class TextSafe(Func):
    """text_safe in SQL: an apostrophe before a text that begins with one of FORMULA_STARTS;
    NULL for NULL and for the empty text. ascii() is the first character's code point (in a
    UTF-8 database), as value[0] is: integers compared, the cheapest test PostgreSQL has."""

    template = (
        "(CASE WHEN ascii(%(expressions)s) IN ("
        + ", ".join(str(ord(char)) for char in FORMULA_STARTS)
        + ") THEN '''' || %(expressions)s ELSE NULLIF(%(expressions)s, '') END)"
    )
    output_field = TextField()

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        # The argument appears three times in the template: its parameters too.
        sql, params = compiler.compile(self.source_expressions[0])
        return self.template % {"expressions": sql}, (*params, *params, *params)


class UtcText(Func):
    """utc_text in SQL: the moment in UTC, the fraction of a second cut off (as isoformat cuts
    it); NULL for NULL. A timestamp, which PostgreSQL writes "YYYY-MM-DD HH:MM:SS" under the
    ISO DateStyle (its default, and the session's unless someone changed it); under another,
    to_char writes it, at more than twice the cost."""

    template = "date_trunc('second', %(expressions)s AT TIME ZONE INTERVAL '0')"
    template_any_datestyle = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    output_field = DateTimeField()

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra_context: Any
    ) -> tuple[str, tuple[Any, ...]]:
        connection.ensure_connection()
        datestyle = connection.connection.info.parameter_status("DateStyle") or ""
        template = self.template if datestyle.startswith("ISO") else self.template_any_datestyle
        return super().as_sql(compiler, connection, template=template, **extra_context)


def cell_safe(value: Cell) -> str | int | float:
    """A value of any type a spreadsheet shows as it is: text through text_safe, datetimes
    written in UTC, numbers stay numbers (a negative number is not a formula), None is empty."""
    if value is None or isinstance(value, str):
        return text_safe(value)
    if isinstance(value, dt.datetime):
        return utc_text(value)
    return value


# --- Columns ----------------------------------------------------------------------------------

COUNT_FORMAT = "#,##0"
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"


@dataclass(frozen=True)
class Column:
    """One column of a file: `name` heads a CSV, `title` an XLSX sheet, which is `width`
    characters wide and shows its numbers (or dates) in `number_format`."""

    name: str
    title: str
    width: float = 14
    number_format: str = ""


def _count(name: str, title: str, width: float = 14) -> Column:
    return Column(name, title, width, COUNT_FORMAT)


def _date(name: str, title: str) -> Column:
    return Column(name, title, 20, DATE_FORMAT)


# --- The rewards of a filter ----------------------------------------------------------------

REWARD_COLUMNS = [
    Column("campaign", "Campaign", 24),
    Column("reward_id", "Reward ID", 18),
    _date("date_utc", "Date (UTC)"),
    Column("recipient_email", "Recipient email", 30),
    Column("recipient_id", "Recipient ID", 18),
    Column("name", "Name", 24),
    _count("trees", "Trees", 8),
    Column("source", "Source", 11),
    Column("batch", "Batch", 8, "0"),
    Column("sender", "Sender", 16),
    Column("ledger_state", "Ledger state", 12),
    Column("url", "Link", 40),
    _date("missing_since_utc", "Missing since (UTC)"),
    _date("last_seen_utc", "Last seen (UTC)"),
]
REWARD_HEADER = [column.name for column in REWARD_COLUMNS]
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


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    # A spreadsheet's dates have no time zone (openpyxl refuses an aware one): UTC, as titled.
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value else None


def rewards_export_rows(
    *, rewards: QuerySet[MirroredReward], dates_as_text: bool = True
) -> Iterator[list[Cell]]:
    """The rows of the file, in the queryset's order, read CHUNK_ROWS at a time, already
    made safe (a million rows: each column gets only the treatment its type needs). Dates are
    UTC text for a CSV, UTC datetimes for a spreadsheet (`dates_as_text=False`)."""
    moment: Callable[[dt.datetime | None], Cell] = utc_text if dates_as_text else _naive_utc
    for row in rewards.values_list(*_REWARD_FIELDS).iterator(chunk_size=CHUNK_ROWS):
        (campaign, remote_id, date, email, rid, name, trees, send_id, batch, sender, state, url,
         missing, seen) = row  # fmt: skip
        yield [
            text_safe(campaign),
            text_safe(remote_id),
            moment(date),
            text_safe(email),
            text_safe(rid),
            text_safe(name),
            trees,
            "dashboard" if send_id else "elsewhere",
            batch or "",
            text_safe(sender),
            state or "",
            text_safe(url),
            moment(missing),
            moment(seen),
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


def rewards_csv(*, rewards: QuerySet[MirroredReward], via: str = "") -> Iterator[bytes]:
    """The CSV of the rewards, UTF-8 bytes in pieces: by COPY on PostgreSQL, by the csv module
    elsewhere; `via` ("copy" or "python") chooses, for the tests and the benchmark."""
    via = via or ("copy" if connections[rewards.db].vendor == "postgresql" else "python")
    if via == "copy":
        return rewards_csv_copy(rewards=rewards)
    pieces = csv_pieces(header=REWARD_HEADER, rows=rewards_export_rows(rewards=rewards), safe=True)
    return (piece.encode() for piece in pieces)


# COPY ends a row with a line feed, the csv module with CR LF. Each row's last cell is this
# constant, which COPY writes quoted (it holds a comma): `,"~,"`. That and a line feed can only
# be this cell at the end of a row: inside a quoted cell a quote is always doubled, and no
# other quote is followed by "~". So ROW_END is replaced by CR LF, in C, a piece at a time.
ROW_END_CELL = "~,"
ROW_END = b',"~,"\n'


def _copy_cells(rewards: QuerySet[MirroredReward]) -> QuerySet[MirroredReward]:
    """The queryset, its columns the cells of rewards_export_rows formatted in SQL."""
    cells = {
        "csv_campaign": TextSafe(F("campaign__name")),
        "csv_reward_id": TextSafe(F("remote_id")),
        "csv_date": UtcText(F("date")),
        "csv_email": TextSafe(F("recipient_email")),
        "csv_recipient_id": TextSafe(F("recipient_id")),
        "csv_name": TextSafe(F("send__name")),
        "csv_trees": F("tree_count"),
        "csv_source": Case(
            When(send__isnull=False, then=Value("dashboard")),
            default=Value("elsewhere"),
            output_field=TextField(),
        ),
        "csv_batch": F("send__batch_id"),
        "csv_sender": TextSafe(F("send__batch__created_by__username")),
        "csv_state": NullIf(F("send__state"), Value("")),
        "csv_url": TextSafe(F("send__url")),
        "csv_missing": UtcText(F("missing_since")),
        "csv_seen": UtcText(F("last_seen_at")),
        "csv_row_end": Value(ROW_END_CELL, output_field=TextField()),
    }
    return rewards.annotate(**cells).values_list(*cells)


def rewards_copy_sql(*, rewards: QuerySet[MirroredReward]) -> str:
    """`COPY (the filter's SELECT, its cells formatted) TO STDOUT` as CSV, parameters bound."""
    # compose_sql is PostgreSQL's (psycopg's own binding, as the driver would send them).
    operations: Any = connections[rewards.db].ops
    sql, params = _copy_cells(rewards).query.sql_with_params()
    select = operations.compose_sql(sql, params)
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER false)"


def rewards_csv_copy(*, rewards: QuerySet[MirroredReward]) -> Iterator[bytes]:
    """rewards_csv by PostgreSQL's COPY: our header, then COPY's rows gathered into pieces of
    about PIECE_SIZE. Nothing runs before the first piece is asked for (a streamed response
    holds the connection only while it is read), and a download closed early cancels the
    COPY: psycopg sends the cancel and reads what is left, the connection stays usable."""
    header = io.StringIO()
    csv.writer(header).writerow(REWARD_HEADER)
    yield header.getvalue().encode()
    statement = rewards_copy_sql(rewards=rewards)
    with connections[rewards.db].cursor() as cursor, cursor.copy(statement) as copy:
        parts: list[Buffer] = []
        size = 0
        tail = b""
        for data in copy:
            parts.append(data)
            size += len(data)
            if size >= PIECE_SIZE:
                block = tail + b"".join(parts)
                # Whole rows only, so that no ROW_END is cut in two.
                if cut := block.rfind(b"\n") + 1:
                    yield block[:cut].replace(ROW_END, b"\r\n")
                tail = block[cut:]
                parts.clear()
                size = 0
        if block := tail + b"".join(parts):
            yield block.replace(ROW_END, b"\r\n")


def _xlsx_value(value: Cell) -> Cell:
    # cell_safe, but a date stays a date (already naive UTC) for its number format.
    return value if isinstance(value, dt.datetime) else cell_safe(value)


def xlsx_write(
    *, sheets: Iterable[tuple[str, Sequence[Column], Iterable[Sequence[Cell]]]], out: IO[bytes]
) -> None:
    """A workbook of (title, columns, rows) sheets, written row by row (write-only mode): the
    columns' titles in bold as a frozen first row, their widths, and their number formats."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    for title, columns, rows in sheets:
        sheet = workbook.create_sheet(title=title[:31])
        # Both before the first row: a write-only sheet writes its head first.
        sheet.freeze_panes = "A2"
        for number, column in enumerate(columns, start=1):
            sheet.column_dimensions[get_column_letter(number)].width = column.width
        header = []
        for column in columns:
            cell = WriteOnlyCell(sheet, value=column.title)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        formats = [column.number_format for column in columns]
        for row in rows:
            cells: list[object] = []
            for value, number_format in zip(row, formats, strict=False):
                value = _xlsx_value(value)
                if number_format and isinstance(value, int | float | dt.datetime):
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.number_format = number_format
                    cells.append(cell)
                else:
                    cells.append(value)
            sheet.append(cells)
    workbook.save(out)


def rewards_xlsx(*, rewards: QuerySet[MirroredReward], out: IO[bytes]) -> None:
    rows = rewards_export_rows(rewards=rewards, dates_as_text=False)
    xlsx_write(sheets=[("Rewards", REWARD_COLUMNS, rows)], out=out)


# --- The monthly report ---------------------------------------------------------------------

REPORT_TABLES = ("months", "campaigns", "senders", "ledger")


MONTH_COLUMNS = [
    Column("month", "Month", 12),
    _count("mokugift_rewards", "Mokugift rewards"),
    _count("mokugift_trees", "Mokugift trees"),
    _count("dashboard_rewards", "Sent from here"),
    _count("dashboard_trees", "Trees sent from here", 18),
    _count("difference", "Difference"),
    _count("sent_elsewhere", "Sent elsewhere"),
    _count("in_ledger_not_in_mokugift", "In our ledger, not in Mokugift", 26),
    _count("paid_twice", "Paid twice", 11),
    Column("disagree", "Disagrees", 10),
]
CAMPAIGN_COLUMNS = [
    Column("campaign", "Campaign", 28),
    _count("mokugift_rewards", "Mokugift rewards"),
    _count("mokugift_trees", "Mokugift trees"),
    _count("dashboard_rewards", "Sent from here"),
    _count("dashboard_trees", "Trees sent from here", 18),
]
SENDER_COLUMNS = [
    Column("sender", "Sender", 20),
    _count("dashboard_rewards", "Rewards sent"),
    _count("dashboard_trees", "Trees"),
]
LEDGER_COLUMNS = [
    _date("sent_at_utc", "Sent (UTC)"),
    Column("campaign", "Campaign", 24),
    Column("batch", "Batch", 8, "0"),
    Column("sender", "Sender", 16),
    Column("recipient", "Recipient", 30),
    Column("name", "Name", 24),
    Column("reward_id", "Reward ID", 18),
]


def report_table(
    *, report: Report, table: str, dates_as_text: bool = True
) -> tuple[str, list[Column], list[list[Cell]]]:
    """(title, columns, rows) of one table of the report, as the page shows it."""
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
        return f"{report.year} by month", MONTH_COLUMNS, rows
    if table == "campaigns":
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
        return f"{report.year} by campaign", CAMPAIGN_COLUMNS, rows
    if table == "senders":
        rows = [[s["sender"], s["rewards"], s["trees"]] for s in report.by_sender]
        return f"{report.year} by sender", SENDER_COLUMNS, rows
    if table == "ledger":
        moment: Callable[[dt.datetime | None], Cell] = (
            (lambda value: value) if dates_as_text else _naive_utc
        )
        rows = [
            [
                moment(send.sent_at),
                send.batch.campaign.name,
                send.batch_id,
                send.batch.created_by.username if send.batch.created_by else "",
                send.recipient,
                send.name,
                send.remote_id,
            ]
            # The whole list, not the first rows the page shows.
            for send in ledger_not_in_mokugift(
                year=report.year,
                campaign_ids=report.campaign_ids,
                visible_ids=report.visible_ids,
            ).iterator(chunk_size=CHUNK_ROWS)
        ]
        return f"{report.year} not in Mokugift", LEDGER_COLUMNS, rows
    raise ValueError(f"No report table {table!r}")


def report_csv(*, report: Report, table: str = "months") -> Iterator[str]:
    _, columns, rows = report_table(report=report, table=table)
    return csv_pieces(header=[column.name for column in columns], rows=rows)


def report_xlsx(*, report: Report, out: IO[bytes]) -> None:
    sheets = [report_table(report=report, table=t, dates_as_text=False) for t in REPORT_TABLES]
    xlsx_write(sheets=sheets, out=out)


def export_record(
    *,
    actor: User | AnonymousUser | None,
    what: str,
    fmt: str,
    filters: Mapping[str, object],
    allowed: Iterable[str],
    campaign: Campaign | None = None,
    batch_pk: int | None = None,
    request: HttpRequest | None = None,
) -> None:
    """An export in the audit trail: who took which file, with which filter. Only the filter's
    own fields are kept (`allowed`): a query string is the visitor's to write."""
    kept = {
        key: str(value)[:200] for key, value in filters.items() if key in set(allowed) and value
    }
    audit_record(
        kind=Kind.EXPORT_DOWNLOADED,
        actor=actor,
        request=request,
        campaign=campaign,
        batch_pk=batch_pk,
        detail={"what": what, "format": fmt, "filter": kept},
    )


# --- A batch's results ----------------------------------------------------------------------

RESULTS_COLUMNS = ["row", "recipient", "name", "state", "reward_id", "url", "error"]
LINK_NOT_RECOVERED = (
    "Link not recovered: the reward was made (see its ID), but Mokugift does not give its "
    "URL back; find it in the Mokugift dashboard."
)
# The state of an upload row that never became a ledger row (Batch.left_out).
LEFT_OUT = "left-out"


@dataclass(frozen=True)
class ResultsFile:
    lines: Iterator[str]
    filename: str


def batch_results_csv(*, batch: Batch, state: str = "") -> ResultsFile:
    """The batch's rows as a file, for the batch page and the API alike. By default the whole
    batch: every ledger row and every upload row left out (state "left-out", the reason as its
    error), in the file's row order, so the file accounts for every line that was uploaded.
    `state` narrows it to one state (or to the left-out rows; anything else is ignored), and
    the file's name says so: batch-12-results-failed.csv."""
    only_left_out = state == LEFT_OUT
    if only_left_out or state not in Send.State.values:
        state = ""

    def sent_rows() -> Iterator[list[Cell]]:
        if only_left_out:
            return
        rows = batch.sends.order_by("row_number")
        if state:
            rows = rows.filter(state=state)
        for send in rows.iterator(chunk_size=CHUNK_ROWS):
            # The error text already names its Mokugift code (api_error_words): said once.
            error = LINK_NOT_RECOVERED if send.link_not_recovered else send.error_message
            yield [
                send.row_number,
                send.recipient,
                send.name,
                send.state,
                send.remote_id,
                send.url,
                error,
            ]

    def left_out_rows() -> Iterator[list[Cell]]:
        if state:
            return
        # A row may have left out for more than one reason: one line, the reasons together.
        reasons: dict[int, list[str]] = {}
        for item in batch.left_out:
            reasons.setdefault(item["row"], []).append(item["message"])
        for row_number in sorted(reasons):
            yield [row_number, "", "", LEFT_OUT, "", "", " ".join(reasons[row_number])]

    rows = heapq.merge(sent_rows(), left_out_rows(), key=lambda row: cast(int, row[0]))
    # The BOM, so that Excel reads the names as UTF-8.
    lines = itertools.chain(["\ufeff"], csv_pieces(header=RESULTS_COLUMNS, rows=rows))
    which = f"-{LEFT_OUT}" if only_left_out else f"-{state}" if state else ""
    return ResultsFile(lines=lines, filename=f"batch-{batch.pk}-results{which}.csv")
