"""Reading a recipient file, whatever wrote it, into numbered rows of text.

Every door reads through here (the send page's upload, `send_rewards --csv`): a file is CSV
text in UTF-8 (with or without BOM), UTF-16 with a BOM (Excel's "Unicode text"), Windows-1252
or Mac Roman (Excel's "CSV" on Windows and on a Mac), separated by commas, semicolons or tabs;
or an Excel workbook (.xlsx). What the rows mean (which column is the recipient, what passes)
is csv_import's business, not this module's.

Which legacy encoding: a file that decodes as strict UTF-8 is UTF-8 (a Windows-1252 or Mac
Roman file with accents is almost never valid UTF-8 by chance, and reading a UTF-8 file as
Windows-1252 only ever gives mojibake such as "ZoÃ«", so offering that reading helps nobody).
A file that is not UTF-8 is a spreadsheet's legacy "CSV": Windows-1252 from Excel on Windows,
Mac Roman from Excel on a Mac. Both decode nearly any bytes, and the same byte is "é" in one and
"Ž" in the other: that is the ambiguity that really happens. The reading with more letters
among its accented characters is taken, and the other one is offered beside it (the first row
where they differ) for the person to choose.

An Excel workbook is read by recipient_workbooks.py, into the same Table.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

# The most one upload may be: the send page's form and the command refuse a bigger file.
MAX_FILE_BYTES = 20 * 1024 * 1024
# A recipient list needs a few columns: a wider row is refused rather than read.
MAX_COLUMNS = 1_000

UTF8 = "utf-8"
UTF8_BOM = "utf-8-sig"
UTF16 = "utf-16"
WINDOWS_1252 = "cp1252"
MAC_ROMAN = "mac_roman"
ENCODING_LABELS = {
    UTF8: "UTF-8",
    UTF8_BOM: "UTF-8 (with BOM)",
    UTF16: "UTF-16",
    WINDOWS_1252: "Windows-1252",
    MAC_ROMAN: "Mac Roman",
}
# The encodings a person may choose between for a file that is not Unicode.
LEGACY_ENCODINGS = (WINDOWS_1252, MAC_ROMAN)
MAX_ROWS_WORDS = "50,000 recipients"
SEPARATOR_WORDS = {",": "commas", ";": "semicolons", "\t": "tabs"}


class TableError(Exception):
    """The file as a whole cannot be read; the message says why, for the person."""


class FlaggedCell(str):
    """A cell's text that cannot be taken at face value: a date, or a formula never
    calculated. csv_import makes its row a problem when it is the recipient (a date) or any
    column it reads (a formula without a value)."""

    problem: str
    recipient_only: bool

    def __new__(cls, text: str, *, problem: str, recipient_only: bool) -> FlaggedCell:
        cell = super().__new__(cls, text)
        cell.problem = problem
        cell.recipient_only = recipient_only
        return cell


@dataclass(frozen=True)
class Reading:
    """Another way to read the file: its encoding and how it reads the first row that differs."""

    encoding: str
    row: int
    text: str

    @property
    def label(self) -> str:
        return ENCODING_LABELS[self.encoding]


@dataclass
class Table:
    """A file's rows that hold anything, numbered as the spreadsheet numbers them (blank rows
    count, the first row is 1), cells as the text a person sees. `rows` is read as it is
    iterated, and raises TableError when the file turns out unreadable part way."""

    rows: Iterator[tuple[int, list[str]]]
    kind: str  # "csv" or "xlsx"
    encoding: str = ""
    separator: str = ""
    sheet: str = ""
    sheets: list[str] = field(default_factory=list)
    # This reading (first) and the other one, when the file could be read two ways.
    readings: list[Reading] = field(default_factory=list)

    @property
    def read_as(self) -> str:
        """How the file was read, in words: "Read as Windows-1252, separated by semicolons"."""
        if self.kind == "xlsx":
            where = f"the sheet “{self.sheet}”"
            if len(self.sheets) > 1:
                where += f" (one of {len(self.sheets)})"
            return f"Read as an Excel workbook, {where}"
        words = SEPARATOR_WORDS.get(self.separator)
        how = f", separated by {words}" if words else ", one column"
        return f"Read as {ENCODING_LABELS[self.encoding]}{how}"


def table_read(*, data: bytes, sheet: str = "", encoding: str = "") -> Table:
    """The rows of a recipient file (CSV text in any of the encodings above, or .xlsx).

    `sheet` picks a workbook's sheet by name (the first by default); `encoding` one of
    LEGACY_ENCODINGS for a file that is not Unicode (the likelier one by default). Raises
    TableError when the file as a whole cannot be read."""
    if len(data) > MAX_FILE_BYTES:
        raise TableError(
            f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB. "
            "Keep only the recipient and name columns, or split it."
        )
    if data.startswith(b"PK\x03\x04"):
        # Imported here: the workbook reader imports this module's types and limits.
        from rewards.services.recipient_workbooks import xlsx_table

        return xlsx_table(data=data, sheet=sheet)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise TableError(
            "This is an old Excel workbook (.xls), which cannot be read here. Save it from "
            "your spreadsheet as an Excel workbook (.xlsx) or as CSV, and upload that."
        )
    if sheet:
        raise TableError("Only an Excel workbook (.xlsx) has sheets; this file is CSV text.")
    return _text_table(data=data, encoding=encoding)


# --- CSV text --------------------------------------------------------------------------------


def _text_table(*, data: bytes, encoding: str) -> Table:
    readings: list[Reading] = []
    if data.startswith(codecs.BOM_UTF8):
        chosen, text = UTF8_BOM, _strict(data, UTF8_BOM, "UTF-8")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        chosen, text = UTF16, _strict(data, UTF16, "UTF-16")
    else:
        try:
            chosen, text = UTF8, data.decode(UTF8)
        except UnicodeDecodeError:
            chosen, text, readings = _legacy(data=data, wanted=encoding)
    if "\x00" in text:
        raise TableError(
            "This does not look like a CSV text file or an Excel workbook (it holds binary "
            "data). Upload a .csv or .xlsx file."
        )
    separator = _sniff_separator(text)
    return Table(
        rows=_csv_rows(text=text, separator=separator),
        kind="csv",
        encoding=chosen,
        separator=separator,
        readings=readings,
    )


def _strict(data: bytes, encoding: str, label: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise TableError(
            f"The file starts as {label} text but is not {label} at byte {error.start + 1}. "
            "Save it from your spreadsheet again and upload it again."
        ) from None


def _legacy(*, data: bytes, wanted: str) -> tuple[str, str, list[Reading]]:
    """The file read in the likelier (or the wanted) legacy encoding, and both readings of its
    first differing line when there are two."""
    texts: dict[str, str] = {}
    for candidate in LEGACY_ENCODINGS:
        try:
            texts[candidate] = data.decode(candidate)
        except UnicodeDecodeError:
            # Windows-1252 leaves five bytes undefined: such a file is not Windows-1252.
            continue
    likelier = max(texts, key=lambda name: _letters(texts[name]))
    chosen = wanted if wanted in texts else likelier
    readings: list[Reading] = []
    if len(texts) > 1:
        lines = {name: text.splitlines() for name, text in texts.items()}
        for number, line in enumerate(lines[chosen], start=1):
            others = [name for name in texts if name != chosen]
            if any(_line(lines[o], number) != line for o in others):
                readings = [Reading(chosen, number, line)] + [
                    Reading(o, number, _line(lines[o], number)) for o in others
                ]
                break
    return chosen, texts[chosen], readings


def _line(lines: list[str], number: int) -> str:
    return lines[number - 1] if number <= len(lines) else ""


def _letters(text: str) -> int:
    """How much `text` reads like names: its accented letters of Latin-1's range (à to ÿ, the
    letters of western names), less those that are capitals after a small letter.

    Windows-1252 read as Mac Roman turns "ë" into "Î" and "ü" into "¸"; Mac Roman read as
    Windows-1252 turns "é" into "Ž", outside that range; "José" becomes "JosÈ"."""
    score = 0
    previous = ""
    for char in text:
        if ord(char) > 127 and char.isalpha() and 0xC0 <= ord(char) <= 0xFF:
            score += -1 if char.isupper() and previous.islower() else 1
        previous = char
    return score


def _sniff_separator(text: str) -> str:
    # The first line that holds anything is the header (or the first recipient): whichever
    # of comma, semicolon and tab (a paste from a spreadsheet) it has most of, outside quotes.
    for line in text.splitlines():
        if line.strip():
            unquoted = re.sub(r'"[^"]*"', "", line)
            counts = {d: unquoted.count(d) for d in (",", ";", "\t")}
            best = max(counts, key=lambda d: counts[d])
            return best if counts[best] else ""
    return ""


def too_wide(*, columns: str) -> TableError:
    return TableError(
        f"{columns}; a list of recipients can have at most {MAX_COLUMNS:,} columns. Delete the "
        "columns you do not need and upload it again."
    )


# Separators one record may hold, in quotes or not, before the csv module is stopped: a cell
# list the size of a few MB. A record over MAX_COLUMNS cells is refused with its own count.
MAX_RECORD_SEPARATORS = 100 * MAX_COLUMNS


def _csv_rows(*, text: str, separator: str) -> Iterator[tuple[int, list[str]]]:
    """The records of CSV text, each a list of cells, with their row numbers. The csv module
    builds a whole record before anything can refuse it, and a 20 MB line of separators is
    20 million cells (300 MB): the lines it reads (split as it splits them, on CR, LF or CRLF)
    are counted on their way to it, and a record past MAX_RECORD_SEPARATORS is refused."""
    sep = separator or ","
    counted = {"separators": 0}

    def lines() -> Iterator[str]:
        for number, line in enumerate(io.StringIO(text, newline=""), start=1):
            counted["separators"] += line.count(sep)
            if counted["separators"] > MAX_RECORD_SEPARATORS:
                raise too_wide(
                    columns=f"Line {number:,} of the file has more than {MAX_COLUMNS:,} cells"
                )
            yield line

    reader = csv.reader(lines(), delimiter=sep, strict=False)
    row_number = 0
    try:
        # A spreadsheet shows one row per record (a quoted line break stays inside its cell)
        # and counts blank lines too: so does this, header = row 1.
        for row_number, record in enumerate(reader, start=1):
            counted["separators"] = 0
            if len(record) > MAX_COLUMNS:
                raise too_wide(columns=f"Row {row_number:,} has {len(record):,} columns")
            if any(cell.strip() for cell in record):
                yield row_number, record
    except csv.Error as error:
        raise TableError(
            f"The file could not be read as CSV near row {row_number + 1}: {error}."
        ) from None


def table_sample(
    *, rows: Iterator[tuple[int, list[str]]], count: int
) -> list[tuple[int, list[str]]]:
    """The next `count` rows that hold anything (for the preview's column choice)."""
    sample: list[tuple[int, list[str]]] = []
    for row in rows:
        if len(sample) >= count:
            break
        sample.append(row)
    return sample
