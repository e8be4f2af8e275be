"""Reading an Excel workbook (.xlsx) into the rows recipient_files.table_read returns.

A workbook is untrusted input. Before anything parses it, the archive's declared sizes are
checked (zipfile never inflates a member past its declared size, so a lying size ends in a CRC
error, not gigabytes), and every XML part is refused if it declares a DTD (no spreadsheet
program writes one; it is where entity attacks start). openpyxl, in read-only mode, reads the
workbook's structure: its sheets, their parts, the date system. The shared strings, the
stylesheet (the number format of each cell style: a date, an ID shown 00123) and the chosen
sheet's cells are read here, by one expat pass each, in constant memory: openpyxl's own
reading (through defusedxml's pure-Python ElementTree when defusedxml is installed) took 10 s
for 50,000 rows, it builds every cell of a row, and every empty row up to the dimension the
file declares, before we could refuse any; a stylesheet of a million formats took 780 MB.
Each pass refuses what no spreadsheet program writes (a row past 1,048,576, a cell past 16,384
columns) and more elements than a list needs (formatted empty rows by the million) as soon as
it meets them, and never makes the empty rows between two rows.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from rewards.services.recipient_files import (
    MAX_COLUMNS,
    MAX_ROWS_WORDS,
    FlaggedCell,
    Table,
    TableError,
    too_wide,
)

if TYPE_CHECKING:
    from xml.parsers.expat import XMLParserType

# A workbook's parts, inflated: far more than 50,000 rows of recipients need (about 10 MB of
# sheet XML for five columns), far less than a zip bomb.
MAX_PART_BYTES = 200_000_000
MAX_INFLATED_BYTES = 300_000_000
MAX_PARTS = 2_000
# The elements a sheet may have, empty ones included: five times the rows an upload takes, and
# 1,000,000 cells (50,000 rows of 20 columns). Past them, reading would take minutes of a web
# worker's time for rows that are nearly all empty (formatted, not filled).
MAX_ROW_ELEMENTS = 250_000
MAX_CELL_ELEMENTS = 1_000_000
# What a spreadsheet can hold at all (Excel's and LibreOffice's limits): a cell past them is
# not in any sheet a person saw.
SHEET_MAX_COLUMNS = 16_384
SHEET_MAX_ROWS = 1_048_576
# A stylesheet's cell formats and number formats: Excel holds at most 64,000 of each. Its
# elements (fonts, fills, borders, each format's alignment): a few per format. Past them it was
# not written by a spreadsheet program, and reading on would only cost time.
MAX_STYLES = 64_000
MAX_STYLE_ELEMENTS = 1_000_000


# Tags as expat names them with namespace_separator="}" (and ElementTree with "{" in front).
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_ROW, _CELL, _VALUE, _FORMULA, _INLINE = (f"{_MAIN}{tag}" for tag in ("row", "c", "v", "f", "is"))
_SI, _TEXT, _PHONETIC = (f"{_MAIN}{tag}" for tag in ("si", "t", "rPh"))
_NUM_FMT, _CELL_XFS, _XF = (f"{_MAIN}{tag}" for tag in ("numFmt", "cellXfs", "xf"))
_CELL_REF = re.compile(r"^\$?([A-Za-z]{1,4})\$?(\d{1,8})$")
NOT_A_WORKBOOK = (
    "The file looks like an Excel workbook (.xlsx) but could not be read as one ({why}). "
    "Open it in your spreadsheet, save it again as .xlsx or CSV, and upload that."
)


def xlsx_table(*, data: bytes, sheet: str) -> Table:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise TableError(NOT_A_WORKBOOK.format(why=f"a damaged archive: {error}")) from None
    _check_sizes(members)
    for member in members:
        if member.filename.endswith((".xml", ".rels")):
            _refuse_dtd(archive, member)
    book = _workbook(archive, data)
    names = [name for name, _part in book.sheets]
    if not names:
        raise TableError(NOT_A_WORKBOOK.format(why="it has no sheet"))
    if sheet and sheet not in names:
        listed = ", ".join(f"“{name}”" for name in names)
        raise TableError(f"This workbook has no sheet “{sheet}”; its sheets are {listed}.")
    chosen = sheet or names[0]
    part = dict(book.sheets)[chosen]
    if not part:
        raise TableError(f"The sheet “{chosen}” is a chart, not a table of rows.")
    return Table(
        rows=_sheet_rows(archive=archive, part=part, name=chosen, book=book),
        kind="xlsx",
        sheet=chosen,
        sheets=names,
    )


@dataclass
class _Book:
    # (name, part) of each sheet in the workbook's order; a chart sheet's part is "".
    sheets: list[tuple[str, str]]
    shared_strings: list[str]
    epoch: datetime
    # Cell style numbers whose number format shows a date, or a duration; and the width of
    # those whose format is only zeros ("00000": 123 is shown 00123).
    date_styles: set[int] = field(default_factory=set)
    duration_styles: set[int] = field(default_factory=set)
    padded_styles: dict[int, int] = field(default_factory=dict)


def _workbook(archive: zipfile.ZipFile, data: bytes) -> _Book:
    """What the cells need from the workbook: its sheets, shared strings and number formats.

    openpyxl (read-only) reads the manifest and the workbook part; the shared strings, the
    stylesheet and the sheet's cells are read here, by one expat pass each (openpyxl's own read,
    through defusedxml's pure-Python ElementTree, took 10 s for 50,000 rows, and builds the
    whole stylesheet as a tree)."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.xml.constants import SHARED_STRINGS, STYLES_TYPE

    try:
        reader = ExcelReader(io.BytesIO(data), read_only=True, data_only=True)
        reader.read_manifest()
        reader.read_workbook()
        sheets = []
        for found, rel in reader.parser.find_sheets():
            if rel.target not in reader.valid_files:
                continue
            sheets.append((found.name, "" if "chartsheet" in rel.Type else rel.target))
        strings = reader.package.find(SHARED_STRINGS)  # type: ignore[no-untyped-call]
        styles = reader.package.find(STYLES_TYPE)  # type: ignore[no-untyped-call]
        book = _Book(sheets=sheets, shared_strings=[], epoch=reader.wb.epoch)
    except TableError:
        raise
    except Exception as error:  # openpyxl raises a dozen kinds for a damaged workbook
        raise TableError(NOT_A_WORKBOOK.format(why=_said(error))) from None
    if strings is not None:
        book.shared_strings = _shared_strings(archive, strings.PartName.lstrip("/"))
    if styles is not None:
        _number_formats(archive, styles.PartName.lstrip("/"), book)
    return book


def _number_formats(archive: zipfile.ZipFile, part: str, book: _Book) -> None:
    """Which cell styles show a date, a duration, or a number padded with zeros, from the
    number format of each cell style (the `xf`s of `cellXfs`, numbered from 0 in order): a
    custom one from `numFmts` (numbered from 164) or one of Excel's built-in ones (0 General,
    1 "0", 14 a date, 49 "@" Text...). openpyxl's rules say which formats are dates."""
    from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format

    custom: dict[int, str] = {}
    style_formats: list[int] = []
    at = {"elements": 0, "cell_xfs": 0}

    def start(tag: str, attrs: dict[str, str]) -> None:
        at["elements"] += 1
        if tag == _CELL_XFS:
            at["cell_xfs"] += 1
        elif tag == _NUM_FMT:
            number = _style_number(attrs.get("numFmtId", ""), default=-1)
            if number >= 0:
                custom[number] = attrs.get("formatCode", "")
        elif tag == _XF and at["cell_xfs"]:
            style_formats.append(_style_number(attrs.get("numFmtId", "0")))
        if (
            at["elements"] > MAX_STYLE_ELEMENTS
            or len(custom) > MAX_STYLES
            or len(style_formats) > MAX_STYLES
        ):
            raise TableError(
                f"This workbook's styles ({part}) hold more formats than a spreadsheet "
                f"program writes (at most {MAX_STYLES:,} cell formats): it was not written by "
                "a spreadsheet program, and was not read."
            )

    def end(tag: str) -> None:
        if tag == _CELL_XFS:
            at["cell_xfs"] -= 1

    parser = _expat(part, start=start, end=end)
    for _ in _feed(parser, archive, part):
        pass
    for style, number in enumerate(style_formats):
        code = custom[number] if number in custom else BUILTIN_FORMATS.get(number, "General")
        if is_date_format(code):
            book.date_styles.add(style)
        if is_timedelta_format(code):
            book.duration_styles.add(style)
        if _ZEROS.fullmatch(code):
            book.padded_styles[style] = len(code)


def _style_number(text: str, *, default: int = 0) -> int:
    # A style's or a format's number, as spreadsheet programs write it; anything else is the
    # default (style 0, format 0: General).
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else default


def _shared_strings(archive: zipfile.ZipFile, part: str) -> list[str]:
    strings: list[str] = []
    pieces: list[str] = []
    depth = {"phonetic": 0, "t": 0}

    def start(tag: str, _attrs: dict[str, str]) -> None:
        if tag == _SI:
            pieces.clear()
        elif tag == _PHONETIC:
            depth["phonetic"] += 1
        elif tag == _TEXT:
            depth["t"] += 1

    def end(tag: str) -> None:
        if tag == _SI:
            strings.append("".join(pieces))
        elif tag == _PHONETIC:
            depth["phonetic"] -= 1
        elif tag == _TEXT:
            depth["t"] -= 1

    def text(data: str) -> None:
        # The text of a string is its <t>s, rich text runs included; the reading aids of
        # East Asian names (<rPh>) are not what a cell shows.
        if depth["t"] and not depth["phonetic"]:
            pieces.append(data)

    parser = _expat(part, start=start, end=end, text=text)
    for _ in _feed(parser, archive, part):
        pass
    return strings


def _check_sizes(members: list[zipfile.ZipInfo]) -> None:
    if len(members) > MAX_PARTS:
        raise TableError(NOT_A_WORKBOOK.format(why=f"it has {len(members):,} parts"))
    inflated = sum(member.file_size for member in members)
    biggest = max((member.file_size for member in members), default=0)
    if biggest > MAX_PART_BYTES or inflated > MAX_INFLATED_BYTES:
        raise TableError(
            f"This workbook inflates to {inflated / 1_000_000:,.0f} MB when opened, more than "
            f"a list of recipients ever needs ({MAX_INFLATED_BYTES // 1_000_000} MB), so it "
            "was not read. Copy the recipient rows into a new workbook, or save them as CSV."
        )


_CHUNK = 64 * 1024


class _Done(Exception):
    """Stops a parse once it has seen what it needed."""


def _expat(
    name: str,
    *,
    start: Callable[..., None],
    end: Callable[[str], None] | None = None,
    text: Callable[[str], None] | None = None,
) -> XMLParserType:
    """An expat parser of the part `name` calling `start`, `end` and `text` (buffered), that
    refuses a DTD: no spreadsheet program writes one, and it is where every entity attack (the
    billion laughs, an external file) starts."""
    from xml.parsers import expat

    parser = expat.ParserCreate(namespace_separator="}")

    def refuse(*_args: object) -> None:
        raise TableError(
            f"This workbook's part {name} declares a DTD (XML entities), which no spreadsheet "
            "program writes and which can make a reader inflate it without end, so it was not "
            "read."
        )

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if text is not None:
        parser.CharacterDataHandler = text
        parser.buffer_text = True
    return parser


def _feed(parser: XMLParserType, archive: zipfile.ZipFile, name: str) -> Iterator[None]:
    """Feed the part to `parser` a chunk at a time, yielding after each chunk (what its
    callbacks found is then ready to take)."""
    from xml.parsers import expat

    try:
        with archive.open(name) as source:
            while chunk := source.read(_CHUNK):
                parser.Parse(chunk, False)
                yield
            parser.Parse(b"", True)
            yield
    except _Done:
        return
    except expat.ExpatError as error:
        raise TableError(NOT_A_WORKBOOK.format(why=f"{name}: {_said(error)}")) from None
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        KeyError,
        ValueError,
        NotImplementedError,
        RuntimeError,
    ) as error:
        # A damaged part (its deflate stream, its CRC, its header's name, a part the directory
        # names but lacks), or one zipfile cannot open (encrypted, an unknown compression).
        raise TableError(NOT_A_WORKBOOK.format(why=_said(error))) from None


def _refuse_dtd(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    # A DTD comes before the first element: the parse stops there.
    def first(*_args: object) -> None:
        raise _Done

    parser = _expat(member.filename, start=first)
    for _ in _feed(parser, archive, member.filename):
        pass


def _sheet_rows(
    *, archive: zipfile.ZipFile, part: str, name: str, book: _Book
) -> Iterator[tuple[int, list[str]]]:
    """The sheet's rows that hold anything, as the text a person sees, read in one pass in
    constant memory (expat's callbacks, no tree). What no spreadsheet program writes (a row
    past 1,048,576, a cell past 16,384 columns) is refused before it costs anything; the rows
    between two rows are never made, whatever the file declares its dimension to be."""
    done: list[tuple[int, list[str]]] = []
    # The row being read: its number and its cells by column.
    row: dict[int, str] = {}
    at = {"row": 0, "cells": 0, "column": 0, "rows_seen": 0, "cells_seen": 0}
    cell: dict[str, Any] = {"type": "", "style": 0, "value": [], "formula": False, "in": ""}
    inline: list[str] = []
    columns: dict[str, int] = {}

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == _CELL:
            at["cells"] += 1
            at["cells_seen"] += 1
            if at["cells_seen"] > MAX_CELL_ELEMENTS:
                raise TableError(
                    f"The sheet “{name}” has more than {MAX_CELL_ELEMENTS:,} cells, counting "
                    "empty ones that are only formatted, which is more than a list of "
                    f"{MAX_ROWS_WORDS} needs. Copy the recipient and name columns into a new "
                    "workbook, or save them as CSV, and upload that."
                )
            ref = attrs.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                column = columns.get(letters) or columns.setdefault(letters, _column(ref, name))
            else:
                column = at["column"] + 1
            at["column"] = column
            if at["cells"] > SHEET_MAX_COLUMNS or column > SHEET_MAX_COLUMNS:
                raise TableError(
                    f"Row {at['row']:,} of the sheet “{name}” has more than the "
                    f"{SHEET_MAX_COLUMNS:,} columns a spreadsheet can hold: it was not written "
                    "by a spreadsheet program, and was not read."
                )
            cell["type"] = attrs.get("t", "n")
            cell["style"] = _style_number(attrs.get("s", "0"))
            cell["value"] = []
            cell["formula"] = False
        elif tag == _ROW:
            at["rows_seen"] += 1
            if at["rows_seen"] > MAX_ROW_ELEMENTS:
                raise TableError(
                    f"The sheet “{name}” has more than {MAX_ROW_ELEMENTS:,} rows, counting "
                    "empty ones that are only formatted (below the list, usually). Delete the "
                    "empty rows under your list, or copy the list into a new workbook, and "
                    "upload it again."
                )
            r = attrs.get("r")
            number = _number(r, name) if r else at["row"] + 1
            if number > SHEET_MAX_ROWS:
                raise TableError(
                    f"The sheet “{name}” has a row numbered {number:,}, past the "
                    f"{SHEET_MAX_ROWS:,} rows a spreadsheet can hold: it was not written by a "
                    "spreadsheet program, and was not read."
                )
            at["row"], at["cells"], at["column"] = number, 0, 0
            row.clear()
        elif tag == _VALUE:
            cell["in"] = "v"
        elif tag == _INLINE:
            cell["in"] = "is"
            inline.clear()
        elif tag == _TEXT and cell["in"] == "is":
            cell["in"] = "t"
        elif tag == _PHONETIC:
            cell["in"] = "rPh"
        elif tag == _FORMULA:
            cell["formula"] = True

    def text(data: str) -> None:
        if cell["in"] == "v":
            cell["value"].append(data)
        elif cell["in"] == "t":
            inline.append(data)

    def end(tag: str) -> None:
        if tag == _CELL:
            shown = _cell_shown(cell, inline, book)
            if shown is not None:
                column = at["column"]
                if column > MAX_COLUMNS:
                    raise too_wide(columns=f"The sheet “{name}” has values in column {column:,}")
                row[column] = shown
        elif tag in (_VALUE, _INLINE):
            cell["in"] = ""
        elif tag in (_PHONETIC, _TEXT) and cell["in"] in ("rPh", "t"):
            cell["in"] = "is"
        elif tag == _ROW:
            if any(value.strip() or isinstance(value, FlaggedCell) for value in row.values()):
                width = max(row)
                done.append((at["row"], [row.get(c, "") for c in range(1, width + 1)]))
            row.clear()

    parser = _expat(part, start=start, end=end, text=text)
    for _ in _feed(parser, archive, part):
        yield from done
        done.clear()


def _cell_shown(cell: dict[str, Any], inline: list[str], book: _Book) -> str | None:
    """A cell as the text a person sees in it; None when it is empty."""
    kind = cell["type"]
    if kind == "inlineStr":
        return "".join(inline)
    raw = "".join(cell["value"])
    if not raw:
        if cell["formula"]:
            return FlaggedCell(
                "",
                problem="This cell is a formula saved without its value: open the file in "
                "your spreadsheet, let it calculate, and save it again.",
                recipient_only=False,
            )
        return None
    if kind == "s":
        try:
            return book.shared_strings[int(raw)]
        except (ValueError, IndexError):
            raise TableError(
                NOT_A_WORKBOOK.format(why=f"a cell refers to shared string “{raw[:20]}”")
            ) from None
    if kind in ("str", "e"):
        return raw
    if kind == "b":
        return "TRUE" if raw.strip() in ("1", "true") else "FALSE"
    if kind == "d":
        return _date_cell(raw)
    style = cell["style"]
    if style in book.date_styles:
        from openpyxl.utils.datetime import from_excel

        try:
            moment = from_excel(float(raw), book.epoch, timedelta=style in book.duration_styles)
        except (ValueError, OverflowError):
            return raw
        return _date_cell(moment)
    return _number_shown(raw, width=book.padded_styles.get(style, 0))


# A number format of zeros only ("00000"): a whole number shown with at least that many digits.
_ZEROS = re.compile(r"0+")


def _number_shown(raw: str, *, width: int) -> str:
    """A number cell's stored text as a person sees it under General, "0", "@" or a format
    of zeros `width` wide: a whole number in all its digits, never in exponent form (the
    stored "7E+020" is 700000000000000000000), padded with zeros to the width keeping its sign
    (-45 under "00000" is -00045); a fraction as stored, in plain digits, even under a format
    that would round it (an ID is never rounded). Decimal, not float: a float has 17 digits
    and would make a long ID up."""
    try:
        number = Decimal(raw)
    except InvalidOperation:
        return raw
    # Past a double's range no spreadsheet wrote it; its digits (maybe millions) are not made.
    if not number.is_finite() or not -400 < number.adjusted() < 400:
        return raw
    if number != number.to_integral_value():
        return format(number, "f")
    whole = int(number)
    return ("-" if whole < 0 else "") + str(abs(whole)).rjust(width, "0")


def _date_cell(value: object) -> FlaggedCell:
    if isinstance(value, datetime) and value.time() == time(0):
        text = value.date().isoformat()
    elif isinstance(value, (datetime, date, time)):
        text = value.isoformat()
    else:
        text = str(value)
    return FlaggedCell(
        text,
        problem=f"This cell holds a date ({text}), not a recipient: check the column.",
        recipient_only=True,
    )


def _number(text: str, name: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 8:
        raise TableError(NOT_A_WORKBOOK.format(why=f"the sheet “{name}” has a row “{text}”"))
    return int(text)


def _column(ref: str, name: str) -> int:
    match = _CELL_REF.match(ref)
    if not match:
        raise TableError(NOT_A_WORKBOOK.format(why=f"the sheet “{name}” has a cell “{ref[:20]}”"))
    column = 0
    for letter in match.group(1).upper():
        column = column * 26 + ord(letter) - 64
    return column


def _said(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 120 else text[:119] + "…"
