"""Reading a recipient list (an uploaded CSV or pasted text) into rows the ledger can take.

Nothing here writes. An upload is parsed once, when it arrives; the preview and the
confirmation read what that parse found (services/uploads.py keeps it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from rewards.models import MirroredReward, Send, column_width
from rewards.models.ledger import OPEN_STATES, LeftOutRow, Mode
from rewards.recipients import name_refusal, recipient_key, recipient_refusal
from rewards.services import ledger_postgresql
from rewards.services.recipient_files import (
    MAX_COLUMNS,
    FlaggedCell,
    Reading,
    TableError,
    table_read,
    table_sample,
)
from rewards.services.sending import RecipientRow

if TYPE_CHECKING:
    from campaigns.models import Campaign

MAX_ROWS = 50_000
RECENT_DAYS = 30
# The ledger's columns: a longer value could not be stored, so it cannot be sent either.
MAX_NAME_LENGTH = column_width(Send, "name")
MAX_RECIPIENT_LENGTH = column_width(Send, "recipient")
# How many recipients go into one `IN (...)` when looking for recent rewards.
_LOOKUP_CHUNK = 5_000
# What the preview shows of a file whose columns it asks about: its first rows, each as wide
# as the file is (a file wider than MAX_COLUMNS is refused, or cut there for CSV).
SAMPLE_ROWS = 6
# How much of a header a column's choice shows beside its letter.
CHOICE_HEADER_LENGTH = 30
# Ledger rows that may still become rewards: they count as recent too.

# Headers as people write them, reduced by `_header_key` (case, spaces, "-", "_" and a BOM
# do not matter): "E-mail", "Email Address", "Full Name", "Recipient ID" all match.
EMAIL_HEADERS = {"email", "mail", "emailaddress", "mailaddress", "recipientemail"}
NAME_HEADERS = {"name", "fullname", "recipientname"}
ID_HEADERS = {"id", "recipientid", "userid", "customerid"}


class _EmailValidator(EmailValidator):
    """Django's EmailValidator, its patterns compiled once here: each use of Django's lazily
    compiled ones goes through a proxy object, a third of the time it takes to read the
    addresses of a 50,000-row file. The same patterns, so the same rules."""

    user_regex = re.compile(EmailValidator.user_regex.pattern, EmailValidator.user_regex.flags)
    domain_regex = re.compile(
        EmailValidator.domain_regex.pattern, EmailValidator.domain_regex.flags
    )
    literal_regex = re.compile(
        EmailValidator.literal_regex.pattern, EmailValidator.literal_regex.flags
    )


_email_validator = _EmailValidator()


class Kind:
    """What kind of problem a row has; the preview groups and the tests match on these."""

    BAD_EMAIL = "bad_email"
    BAD_ID = "bad_id"
    MISSING_RECIPIENT = "missing_recipient"
    BAD_NAME = "bad_name"
    NAME_TOO_LONG = "name_too_long"
    DUPLICATE = "duplicate"
    RECENTLY_REWARDED = "recently_rewarded"
    MULTILINE = "multiline"
    # A workbook's cell that is not text: a date where the recipient is, a formula not
    # calculated.
    UNREADABLE_CELL = "unreadable_cell"


MULTILINE_MESSAGE = (
    'This cell runs over several lines: check this row for a quote (") that is opened and '
    "never closed; the rows after it may have been read into this cell."
)


@dataclass(frozen=True)
class CsvProblem:
    row: int
    column: str
    message: str
    kind: str

    def as_left_out(self) -> LeftOutRow:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class Columns:
    """Which column is which (0-based), and whether the first row holds headers. `chosen`
    when a person picked them (problems then name the columns by letter)."""

    recipient: int
    name: int | None
    header: bool
    chosen: bool = False


@dataclass
class CsvParseResult:
    # Every row that passed the rules, recently rewarded ones included.
    rows: list[RecipientRow] = field(default_factory=list)
    problems: list[CsvProblem] = field(default_factory=list)
    total_rows: int = 0
    # Rows among `rows` whose recipient got a reward from this campaign in the last 30 days:
    # sent only when someone says "send anyway".
    recently_rewarded: list[RecipientRow] = field(default_factory=list)
    # Row numbers that did not pass a rule and will not be sent, whatever is confirmed.
    left_out_rows: list[int] = field(default_factory=list)
    # Set when the file as a whole cannot be read (encoding, size, no recipient column).
    error: str = ""
    recipient_column: str = ""
    # How the file was read ("Read as Windows-1252, separated by semicolons"), in which
    # encoding or from which sheet, and the other reading when there could be two.
    read_as: str = ""
    encoding: str = ""
    sheet: str = ""
    sheets: list[str] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    # The columns read; when the headers named none, `needs_columns` and the first rows, for a
    # person to choose from (`error` says it too, for the command).
    columns: Columns | None = None
    needs_columns: bool = False
    sample: list[tuple[int, list[str]]] = field(default_factory=list)
    suggested: Columns | None = None

    @property
    def ok(self) -> bool:
        return not self.error

    def rows_to_send(self, *, send_anyway: bool) -> list[RecipientRow]:
        if send_anyway:
            return list(self.rows)
        recent = {r.row_number for r in self.recently_rewarded}
        return [r for r in self.rows if r.row_number not in recent]

    def left_out(self, *, send_anyway: bool) -> list[LeftOutRow]:
        """The rows not sent, with why, as `Batch.left_out` keeps them."""
        left_out = [
            p.as_left_out()
            for p in self.problems
            if p.kind != Kind.RECENTLY_REWARDED or not send_anyway
        ]
        return sorted(left_out, key=lambda p: p["row"])

    def sent_anyway(self, *, send_anyway: bool) -> list[LeftOutRow]:
        """The recently rewarded rows sent all the same, with why they were flagged, as
        `Batch.sent_anyway` keeps them for its approver."""
        if not send_anyway:
            return []
        return [p.as_left_out() for p in self.problems if p.kind == Kind.RECENTLY_REWARDED]


def recipient_problem(*, mode: str, recipient: str) -> tuple[str, str] | None:
    """(kind, message) when the recipient cannot be sent in this mode, else None."""
    by_id = mode == Mode.LINK_ID
    # The rule the client applies at send: a row passed here is never refused there.
    refusal = recipient_refusal(recipient=recipient, by_id=by_id)
    if not recipient:
        return Kind.MISSING_RECIPIENT, refusal or "The recipient is missing."
    if by_id:
        if len(recipient) > MAX_RECIPIENT_LENGTH:
            return Kind.BAD_ID, f"The ID is longer than {MAX_RECIPIENT_LENGTH} characters."
        if refusal:
            return Kind.BAD_ID, refusal
        return None
    try:
        _email_validator(recipient)
    except ValidationError:
        return Kind.BAD_EMAIL, f"“{_shorten(recipient)}” is not a valid email address."
    if refusal:
        # Valid by RFC 5322 all the same: a quoted local part such as "<b>"@example.com.
        return Kind.BAD_EMAIL, refusal
    if len(recipient) > MAX_RECIPIENT_LENGTH:
        return Kind.BAD_EMAIL, f"The address is longer than {MAX_RECIPIENT_LENGTH} characters."
    return None


def name_problem(*, name: str) -> tuple[str, str] | None:
    if len(name) > MAX_NAME_LENGTH:
        return Kind.NAME_TOO_LONG, f"The name is longer than {MAX_NAME_LENGTH} characters."
    refusal = name_refusal(name=name)
    if refusal:
        return Kind.BAD_NAME, refusal
    return None


def recipients_parse_csv(
    *,
    data: bytes,
    mode: str,
    campaign: Campaign | None = None,
    max_rows: int = MAX_ROWS,
    sheet: str = "",
    encoding: str = "",
    columns: Columns | None = None,
) -> CsvParseResult:
    """Read a recipient file (CSV in any encoding recipient_files reads, or .xlsx) by the
    rules. `sheet` and `encoding` choose among a file's readings; `columns` says which column
    is which when the headers do not (then `needs_columns` asked for it)."""
    result = CsvParseResult()
    try:
        table = table_read(data=data, sheet=sheet, encoding=encoding)
    except TableError as error:
        result.error = str(error)
        return result
    result.read_as = table.read_as
    result.encoding = table.encoding
    result.sheet, result.sheets = table.sheet, table.sheets
    result.readings = table.readings
    records = table.rows
    try:
        _read_rows(records=records, mode=mode, columns=columns, max_rows=max_rows, result=result)
    except TableError as error:
        result.error = str(error)
    if not result.ok:
        result.rows, result.problems, result.left_out_rows = [], [], []
        return result
    if campaign is not None:
        recipients_flag_recent(result=result, mode=mode, campaign=campaign)
    return result


def _read_rows(
    *,
    records: Iterator[tuple[int, list[str]]],
    mode: str,
    columns: Columns | None,
    max_rows: int,
    result: CsvParseResult,
) -> None:
    try:
        header_row, header = next(records)
    except StopIteration:
        result.error = "The file is empty: there are no rows to read."
        return
    if columns is None:
        found = _columns(header=header, mode=mode, result=result)
        if found is None:
            # Ask which column is which, from the first rows.
            result.needs_columns = True
            sample = [(header_row, header)] + table_sample(rows=records, count=SAMPLE_ROWS - 1)
            result.sample = [(n, _sample_cells(cells)) for n, cells in sample]
            result.suggested = _suggest(sample=sample, mode=mode)
            return
        columns = found
    recipient_index, name_index, headerless = columns.recipient, columns.name, not columns.header
    # Problems name a column by its header; without one, by its letter when a person chose
    # it, else as the template does.
    default_recipient = "recipient_id" if mode == Mode.LINK_ID else "email"
    recipient_column = _column_label(header, recipient_index, default_recipient, columns)
    name_column = "name"
    if name_index is not None:
        name_column = _column_label(header, name_index, "name", columns)
    result.recipient_column = recipient_column
    result.columns = columns

    data_records: Iterable[tuple[int, list[str]]] = records
    if headerless:
        data_records = _chain_first((header_row, header), records)
    if columns.chosen:
        # The first rows stay in view with the columns a person chose, to choose again.
        result.sample = [(header_row, _sample_cells(header))]

    first_row_of: dict[str, int] = {}
    for row_number, record in data_records:
        if columns.chosen and len(result.sample) < SAMPLE_ROWS and row_number != header_row:
            result.sample.append((row_number, _sample_cells(record)))
        result.total_rows += 1
        if result.total_rows > max_rows:
            result.error = (
                f"This file has more than {max_rows:,} rows, the most one upload can take. "
                f"Split it into files of at most {max_rows:,} rows and send each."
            )
            return
        _read_row(
            row_number=row_number,
            record=record,
            mode=mode,
            recipient_index=recipient_index,
            name_index=name_index,
            recipient_column=recipient_column,
            name_column=name_column,
            first_row_of=first_row_of,
            result=result,
        )
    if result.total_rows == 0:
        result.error = "The file has a header but no rows of recipients."


def column_letter(index: int) -> str:
    """A 0-based column index as a spreadsheet names it: 0 is A, 26 is AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _sample_cells(cells: list[str]) -> list[str]:
    return [str(c) for c in cells[:MAX_COLUMNS]]


def column_choices(*, sample: list[tuple[int, list[str]]]) -> list[tuple[int, str]]:
    """The columns a person may choose from in the preview, as (0-based index, label): every
    column of the widest sample row, labelled with its letter and what its first row says,
    "Column AD: Courriel" (the first row is the header, or the first recipient when there is
    none; either tells the columns apart better than a letter)."""
    width = min(max((len(cells) for _n, cells in sample), default=0), MAX_COLUMNS)
    first = sample[0][1] if sample else []
    choices = []
    for index in range(width):
        label = f"Column {column_letter(index)}"
        header = _cell(first, index).lstrip("\ufeff").strip()
        if header:
            label += f": {_shorten(' '.join(header.split()), CHOICE_HEADER_LENGTH)}"
        choices.append((index, label))
    return choices


def _column_label(header: list[str], index: int, default: str, columns: Columns) -> str:
    letter = f"column {column_letter(index)}"
    if columns.header and index < len(header):
        return str(header[index]).strip().lstrip("\ufeff") or letter
    return letter if columns.chosen else default


def _suggest(*, sample: list[tuple[int, list[str]]], mode: str) -> Columns:
    """A first guess for the column choice: the column where most of the first rows are
    recipients, and whether the first row is data already (an address in it)."""
    width = max((len(cells) for _n, cells in sample), default=1)
    best, best_count = 0, 0
    if mode != Mode.LINK_ID:
        for index in range(width):
            count = sum(
                1
                for _n, cells in sample
                if recipient_problem(mode=mode, recipient=_cell(cells, index)) is None
            )
            if count > best_count:
                best, best_count = index, count
    first = sample[0][1] if sample else []
    header = not (best_count and recipient_problem(mode=mode, recipient=_cell(first, best)) is None)
    return Columns(recipient=best, name=None, header=header, chosen=True)


def csv_template(*, mode: str) -> str:
    """The header and one example row, for the template a person downloads."""
    return "".join(",".join(row) + "\r\n" for row in template_rows(mode=mode))


def template_rows(*, mode: str) -> list[list[str]]:
    """The template's header and example row, as CSV and XLSX write them."""
    if mode == Mode.LINK_ID:
        return [["recipient_id", "name"], ["user1234", "Sally Chan"]]
    return [["email", "name"], ["sally@example.com", "Sally Chan"]]


# --- Reading -------------------------------------------------------------------------------


def _header_key(cell: str) -> str:
    return re.sub(r"[\s_\-\ufeff]", "", cell).lower()


def _columns(*, header: list[str], mode: str, result: CsvParseResult) -> Columns | None:
    """(recipient column, name column, whether the first row is a recipient, not a header),
    or None with `result.error` saying why no recipient column was found."""
    keys = [_header_key(str(cell)) for cell in header]
    email_index = _find(keys, EMAIL_HEADERS)
    id_index = _find(keys, ID_HEADERS)
    name_index = _find(keys, NAME_HEADERS)
    wanted = id_index if mode == Mode.LINK_ID else email_index
    if wanted is not None:
        return Columns(recipient=wanted, name=name_index, header=True)

    # A pasted list of addresses with no header: the first cell is already a recipient.
    first = _cell(header, 0)
    if mode != Mode.LINK_ID and first and recipient_problem(mode=mode, recipient=first) is None:
        return Columns(recipient=0, name=1, header=False)

    if mode == Mode.LINK_ID:
        hint = ""
        if email_index is not None:
            hint = (
                " This file has an email column: to send to email addresses, choose "
                "“Give me the link (email address)” or “Mokugift emails it”."
            )
        result.error = (
            "No recipient ID column found. The first row must hold the headers, "
            f"for example “recipient_id,name”.{hint}"
        )
    else:
        hint = ""
        if id_index is not None:
            hint = (
                " This file has a recipient ID column: to send by ID, choose "
                "“Give me the link (our recipient ID)”."
            )
        result.error = (
            "No email column found. The first row must hold the headers, for example "
            f"“email,name” (also accepted: e-mail, Email Address, mail).{hint}"
        )
    return None


def _find(keys: list[str], names: set[str]) -> int | None:
    for index, key in enumerate(keys):
        if key in names:
            return index
    return None


def _chain_first(
    first: tuple[int, list[str]], rest: Iterable[tuple[int, list[str]]]
) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


def _read_row(
    *,
    row_number: int,
    record: list[str],
    mode: str,
    recipient_index: int,
    name_index: int | None,
    recipient_column: str,
    name_column: str,
    first_row_of: dict[str, int],
    result: CsvParseResult,
) -> None:
    recipient = _cell(record, recipient_index)
    name = _cell(record, name_index) if name_index is not None else ""
    problems = []
    for column, index, is_recipient in (
        (recipient_column, recipient_index, True),
        (name_column, name_index, False),
    ):
        cell = record[index] if index is not None and index < len(record) else ""
        if isinstance(cell, FlaggedCell) and (is_recipient or not cell.recipient_only):
            problems.append(CsvProblem(row_number, column, cell.problem, Kind.UNREADABLE_CELL))
    if problems:
        result.problems.extend(problems)
        result.left_out_rows.append(row_number)
        return
    for column, value in ((recipient_column, recipient), (name_column, name)):
        # Nobody means a line break inside an address or a name: it is nearly always a quote
        # opened and never closed, which swallows the rows after it into one cell.
        if "\n" in value or "\r" in value:
            problems.append(CsvProblem(row_number, column, MULTILINE_MESSAGE, Kind.MULTILINE))
    if problems:
        result.problems.extend(problems)
        result.left_out_rows.append(row_number)
        return
    # Spreadsheets pad: runs of blanks in a name become one space.
    name = " ".join(name.split())
    problem = recipient_problem(mode=mode, recipient=recipient)
    if problem:
        problems.append(CsvProblem(row_number, recipient_column, problem[1], problem[0]))
    problem = name_problem(name=name)
    if problem:
        problems.append(CsvProblem(row_number, name_column, problem[1], problem[0]))
    if not problems:
        key = recipient_key(by_id=mode == Mode.LINK_ID, recipient=recipient)
        first = first_row_of.get(key)
        if first is not None:
            problems.append(
                CsvProblem(
                    row_number,
                    recipient_column,
                    f"{_shorten(recipient)} is already in row {first}; each recipient is "
                    "sent once per upload.",
                    Kind.DUPLICATE,
                )
            )
        else:
            first_row_of[key] = row_number
    if problems:
        result.problems.extend(problems)
        result.left_out_rows.append(row_number)
        return
    result.rows.append(RecipientRow(row_number=row_number, recipient=recipient, name=name))


def _cell(record: list[str], index: int) -> str:
    return str(record[index]).strip() if index < len(record) else ""


def _shorten(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --- Recently rewarded -----------------------------------------------------------------------


def recipients_flag_recent(*, result: CsvParseResult, mode: str, campaign: Campaign) -> None:
    """Flag rows whose recipient this campaign rewarded in the last 30 days.

    Both the ledger (what we sent) and the mirror (what Mokugift reports, including rewards
    sent from elsewhere) count, and so do ledger rows still on their way: the same file
    uploaded twice, a few minutes apart, would otherwise reward everyone twice. One statement
    for the whole file on PostgreSQL (ledger_postgresql.recipients_recent), a few queries
    chunked for `IN (...)` elsewhere.
    """
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    by_id = mode == Mode.LINK_ID
    keys = [recipient_key(by_id=mode == Mode.LINK_ID, recipient=r.recipient) for r in result.rows]
    if connection.vendor == "postgresql":
        rewarded, on_the_way = ledger_postgresql.recipients_recent(
            campaign_id=campaign.pk, keys=keys, by_id=by_id, since=since, open_states=OPEN_STATES
        )
    else:
        rewarded, on_the_way = _recent_orm(keys=keys, by_id=by_id, since=since, campaign=campaign)
    _flag(result=result, mode=mode, rewarded=rewarded, on_the_way=on_the_way)


def _recent_orm(
    *, keys: list[str], by_id: bool, since: datetime, campaign: Campaign
) -> tuple[set[str], set[str]]:
    """The same lookup through the ORM (SQLite), chunked for `IN (...)`."""
    rewarded: set[str] = set()
    on_the_way: set[str] = set()
    recent = Q(state=Send.State.SENT, sent_at__gte=since) | Q(
        state__in=OPEN_STATES, batch__created_at__gte=since
    )
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        ledger = Send.objects.filter(recent, batch__campaign=campaign)
        # The same recipient string means an ID in link-id batches, an address otherwise.
        if by_id:
            ledger = ledger.filter(batch__mode=Mode.LINK_ID, recipient__in=chunk).annotate(
                key=F("recipient")
            )
            mirror = MirroredReward.objects.filter(
                campaign=campaign, date__gte=since, recipient_id__in=chunk
            ).values_list("recipient_id", flat=True)
        else:
            ledger = (
                ledger.exclude(batch__mode=Mode.LINK_ID)
                .annotate(key=Lower("recipient"))
                .filter(key__in=chunk)
            )
            mirror = (
                MirroredReward.objects.filter(campaign=campaign, date__gte=since)
                .annotate(key=Lower("recipient_email"))
                .filter(key__in=chunk)
                .values_list("key", flat=True)
            )
        for key, state in ledger.values_list("key", "state"):
            (rewarded if state == Send.State.SENT else on_the_way).add(key)
        rewarded.update(mirror)
    return rewarded, on_the_way


def _flag(*, result: CsvParseResult, mode: str, rewarded: set[str], on_the_way: set[str]) -> None:
    for row in result.rows:
        key = recipient_key(by_id=mode == Mode.LINK_ID, recipient=row.recipient)
        if key in rewarded:
            why = f"got a reward from this campaign in the last {RECENT_DAYS} days."
        elif key in on_the_way:
            why = "is in a batch of this campaign that is still being sent."
        else:
            continue
        result.recently_rewarded.append(row)
        result.problems.append(
            CsvProblem(
                row.row_number,
                result.recipient_column,
                f"{_shorten(row.recipient)} {why}",
                Kind.RECENTLY_REWARDED,
            )
        )
    result.problems.sort(key=lambda p: p.row)


__all__ = [
    "Columns",
    "CsvParseResult",
    "CsvProblem",
    "Kind",
    "MAX_ROWS",
    "csv_template",
    "name_problem",
    "recipient_problem",
    "recipients_flag_recent",
    "recipients_parse_csv",
    "template_rows",
]
