"""Hostile workbooks and CSV files: each is refused with a clear message (or read right), in
bounded time and memory, and nothing is half-read.

Each file is read in a fresh Python process, which reports its peak RSS (ru_maxrss) and the
time the read took: a process that starts at about 60 MB and reads a real 50,000-row workbook
in well under 200 MB. A zip bomb read naively would take gigabytes; a million-column row
hundreds of MB.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = Path(__file__).parent / "files"
MAX_RSS_MB = 250
# Generous: this machine runs other test suites at once (a load of 8 on 2 cores), and the
# slowest of these took 4 to 7 s under that load.
MAX_SECONDS = 15

READ = """
import json, sys, time
from rewards.services.recipient_files import TableError, table_read
data = open(sys.argv[1], "rb").read()
started = time.monotonic()
try:
    table = table_read(data=data)
    rows = list(table.rows)
    outcome = {"rows": rows[:5], "count": len(rows)}
except TableError as error:
    outcome = {"error": str(error)}
outcome["seconds"] = time.monotonic() - started
# The peak of this process since its exec (ru_maxrss would count the parent's, from fork).
status = open("/proc/self/status").read()
outcome["rss_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps(outcome))
"""


def read_in_a_process(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", READ, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout)
    assert outcome["rss_mb"] < MAX_RSS_MB, outcome
    assert outcome["seconds"] < MAX_SECONDS, outcome
    return outcome


HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)


def _cell(ref: str, text: str) -> bytes:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'.encode()


SHEET = "xl/worksheets/sheet1.xml"


def workbook_with_sheet(
    path: Path, pieces, *, declared_size: int | None = None, part: str = SHEET
) -> Path:
    """The LibreOffice workbook (files/workbook.xlsx) with its first sheet's XML (or `part`)
    replaced by `pieces` (bytes, or an iterable of chunks written as they come)."""
    base = (FILES / "workbook.xlsx").read_bytes()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(path, "w") as target:
        for member in source.infolist():
            info = zipfile.ZipInfo(member.filename, date_time=member.date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            if member.filename != part:
                target.writestr(info, source.read(member))
                continue
            with target.open(info, "w", force_zip64=True) as out:
                for chunk in [pieces] if isinstance(pieces, bytes) else pieces:
                    out.write(chunk)
    if declared_size is not None:
        _lie_about_size(path, part, declared_size)
    return path


def _lie_about_size(path: Path, name: str, size: int) -> None:
    """Rewrite the sheet's uncompressed size in the central directory (what zipfile reads), as
    a zip bomb does to pass a check of declared sizes."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + name_length]) == name.encode():
            assert struct.unpack_from("<I", data, at + 24)[0] != 0xFFFFFFFF
            struct.pack_into("<I", data, at + 24, size)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def rows_of(count: int, row_xml) -> object:
    for start in range(1, count + 1, 10_000):
        yield b"".join(row_xml(n) for n in range(start, min(start + 10_000, count + 1)))


@pytest.fixture
def data_rows() -> bytes:
    return (
        b'<sheetData><row r="1">'
        + _cell("A1", "email")
        + b'</row><row r="2">'
        + _cell("A2", "zoe@example.com")
        + b"</row>"
    )


def test_a_zip_bomb_is_refused_by_its_size_before_anything_inflates(tmp_path, data_rows):
    # 400 MB of blanks inflate from about 0.4 MB.
    blanks = (b" " * (1024 * 1024) for _ in range(400))
    path = workbook_with_sheet(tmp_path / "bomb.xlsx", [HEAD, data_rows, *blanks])
    assert path.stat().st_size < 5 * 1024 * 1024
    outcome = read_in_a_process(path)
    assert "inflates to 419 MB" in outcome["error"], outcome
    assert "(300 MB)" in outcome["error"]


def test_a_zip_bomb_that_lies_about_its_size_stops_at_the_size_it_declared(tmp_path, data_rows):
    blanks = (b" " * (1024 * 1024) for _ in range(400))
    path = workbook_with_sheet(
        tmp_path / "liar.xlsx", [HEAD, data_rows, *blanks], declared_size=10_000
    )
    outcome = read_in_a_process(path)
    # zipfile inflates no more than the declared size, then finds the CRC wrong.
    assert "could not be read as one" in outcome["error"], outcome
    assert "rows" not in outcome


@pytest.mark.parametrize(
    "doctype",
    [
        # The billion laughs: ten entities of ten, a gigabyte of "lol".
        b'<!DOCTYPE w [<!ENTITY a "lol">'
        + b"".join(
            f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">'.encode() for n in range(9)
        )
        + b"]>",
        # An external entity: a file of the server, read into a cell.
        b'<!DOCTYPE w [<!ENTITY a SYSTEM "file:///etc/passwd">]>',
    ],
    ids=["billion-laughs", "external-entity"],
)
# The parts we read, and those openpyxl reads (the workbook, its styles): each is checked
# before anything parses it.
@pytest.mark.parametrize(
    "part",
    ["xl/worksheets/sheet1.xml", "xl/sharedStrings.xml", "xl/workbook.xml", "xl/styles.xml"],
)
def test_an_xml_entity_attack_is_refused(tmp_path, doctype, part):
    base = (FILES / "workbook.xlsx").read_bytes()
    path = tmp_path / "entities.xlsx"
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(path, "w") as target:
        for member in source.infolist():
            content = source.read(member)
            if member.filename == part:
                declaration, _, rest = content.partition(b"?>")
                # The entity used where a cell's text is.
                rest = rest.replace(b"zoe@example.com", b"&j;" if b"&i;" in doctype else b"&a;")
                content = declaration + b"?>" + doctype + rest
            target.writestr(member, content)
    outcome = read_in_a_process(path)
    assert "declares a DTD" in outcome["error"], outcome
    assert part in outcome["error"]


def _styled(n: int) -> bytes:
    # An empty row and cell that only carry a format (s="1"), as a formatted range leaves.
    return f'<row r="{n + 2}" s="1" customFormat="1"><c r="A{n + 2}" s="1"/></row>'.encode()


def test_thousands_of_empty_styled_rows_are_skipped(tmp_path, data_rows):
    path = workbook_with_sheet(
        tmp_path / "styled.xlsx",
        [HEAD, data_rows, *rows_of(20_000, _styled), b"</sheetData></worksheet>"],
    )
    outcome = read_in_a_process(path)
    assert outcome["count"] == 2, outcome
    assert outcome["rows"][1] == [2, ["zoe@example.com"]]


def test_a_million_empty_styled_rows_are_refused_in_bounded_time(tmp_path, data_rows):
    path = workbook_with_sheet(
        tmp_path / "styled.xlsx",
        [HEAD, data_rows, *rows_of(1_000_000, _styled), b"</sheetData></worksheet>"],
    )
    outcome = read_in_a_process(path)
    assert "more than 250,000 rows, counting empty ones" in outcome["error"], outcome


def test_millions_of_empty_styled_cells_are_refused_in_bounded_time(tmp_path, data_rows):
    def wide(n: int) -> bytes:
        return f'<row r="{n + 2}">'.encode() + b'<c s="1"/>' * 1_000 + b"</row>"

    path = workbook_with_sheet(
        tmp_path / "cells.xlsx",
        [HEAD, data_rows, *rows_of(1_100, wide), b"</sheetData></worksheet>"],
    )
    outcome = read_in_a_process(path)
    assert "more than 1,000,000 cells" in outcome["error"], outcome


def test_a_declared_dimension_of_the_whole_sheet_is_not_believed(tmp_path, data_rows):
    dimension = b'<dimension ref="A1:XFD1048576"/>'
    path = workbook_with_sheet(
        tmp_path / "dimension.xlsx", [HEAD, dimension, data_rows, b"</sheetData></worksheet>"]
    )
    outcome = read_in_a_process(path)
    assert outcome["rows"] == [[1, ["email"]], [2, ["zoe@example.com"]]], outcome


def test_a_row_of_a_million_cells_is_refused(tmp_path, data_rows):
    cells = (b"<c/>" * 100_000 for _ in range(10))
    path = workbook_with_sheet(
        tmp_path / "wide.xlsx",
        [HEAD, data_rows, b'<row r="3">', *cells, b"</row></sheetData></worksheet>"],
    )
    outcome = read_in_a_process(path)
    assert "Row 3" in outcome["error"] and "16,384 columns" in outcome["error"], outcome


def test_a_cell_past_the_last_column_of_a_sheet_is_refused(tmp_path, data_rows):
    path = workbook_with_sheet(
        tmp_path / "far.xlsx",
        [HEAD, data_rows, b'<row r="3">', _cell("ZZZZ3", "x"), b"</row></sheetData></worksheet>"],
    )
    outcome = read_in_a_process(path)
    assert "16,384 columns" in outcome["error"], outcome


def test_values_in_more_columns_than_a_list_needs_are_refused(tmp_path, data_rows):
    path = workbook_with_sheet(
        tmp_path / "many.xlsx",
        [HEAD, data_rows, b'<row r="3">', _cell("XFD3", "x"), b"</row></sheetData></worksheet>"],
    )
    outcome = read_in_a_process(path)
    assert "at most 1,000 columns" in outcome["error"], outcome


def test_a_row_past_the_last_row_of_a_sheet_is_refused(tmp_path, data_rows):
    path = workbook_with_sheet(
        tmp_path / "deep.xlsx",
        [HEAD, data_rows, b'<row r="9999999">', _cell("A9999999", "x"), b"</row>"]
        + [b"</sheetData></worksheet>"],
    )
    outcome = read_in_a_process(path)
    assert "9,999,999" in outcome["error"], outcome


def test_a_value_in_the_last_row_of_a_sheet_reads_in_bounded_time(tmp_path, data_rows):
    # openpyxl fills the rows between with empty ones: a million, read and skipped.
    last = b'<row r="1048576">' + _cell("C1048576", "bob@example.com") + b"</row>"
    path = workbook_with_sheet(
        tmp_path / "last.xlsx", [HEAD, data_rows, last, b"</sheetData></worksheet>"]
    )
    outcome = read_in_a_process(path)
    assert outcome["count"] == 3, outcome


STYLES_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)


@pytest.mark.parametrize(
    ("element", "count"),
    # Cell formats past Excel's 64,000; elements by the million that are not formats at all.
    [(b'<xf numFmtId="0"/>', 1_000_000), (b"<font/>", 3_000_000)],
    ids=["cell-formats", "elements"],
)
def test_a_stylesheet_of_millions_of_formats_is_refused_in_bounded_time(tmp_path, element, count):
    opening, closing = (
        (b"<cellXfs>", b"</cellXfs>") if b"xf" in element else (b"<fonts>", b"</fonts>")
    )
    path = workbook_with_sheet(
        tmp_path / "styles.xlsx",
        [STYLES_HEAD, opening, *(element * 10_000 for _ in range(count // 10_000)), closing]
        + [b"</styleSheet>"],
        part="xl/styles.xml",
    )
    outcome = read_in_a_process(path)
    assert "styles (xl/styles.xml) hold more formats" in outcome["error"], outcome


# --- CSV text: the same column limit, before the csv module splits a line ------------------


def test_a_csv_line_of_twenty_million_cells_is_refused_before_it_is_split(tmp_path):
    # Under the 20 MB limit, one line of separators: the csv module would make a list of
    # twenty million cells (160 MB of pointers) before anything could refuse it.
    path = tmp_path / "wide.csv"
    path.write_bytes(b"email;name\nzoe@example.com" + b";" * (20 * 1024 * 1024 - 40) + b"\n")
    outcome = read_in_a_process(path)
    assert outcome.get("error", "").startswith(
        "Line 2 of the file has more than 1,000 cells; a list of recipients can have at most "
        "1,000 columns."
    ), outcome


def test_a_csv_row_just_past_the_column_limit_is_refused_and_one_at_it_is_read(tmp_path):
    at_limit = tmp_path / "at.csv"
    at_limit.write_bytes(b"email," + b"x," * 998 + b"x\nzoe@example.com\n")
    assert read_in_a_process(at_limit)["count"] == 2
    past = tmp_path / "past.csv"
    past.write_bytes(b"email\nzoe@example.com\n" + b"x," * 1000 + b"x\n")
    assert read_in_a_process(past)["error"].startswith("Row 3 has 1,001 columns; a list of")


def test_separators_inside_quotes_do_not_count_as_columns(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b'email,notes\nzoe@example.com,"' + b"," * 5_000 + b'"\n')
    outcome = read_in_a_process(path)
    assert outcome["count"] == 2 and outcome["rows"][1][1][1] == "," * 5_000, outcome


@pytest.mark.parametrize(
    "record",
    [
        # A quote inside a cell is a character to the csv module, not the start of a quote.
        pytest.param(b'a"' + b";" * (20 * 1024 * 1024 - 40) + b'"', id="stray-quotes"),
        # One record of many lines, each under the limit, joined by quoted line breaks.
        pytest.param((b";" * 900 + b';"\n"') * 20_000, id="quoted-line-breaks"),
    ],
)
def test_a_csv_record_that_hides_its_width_is_refused_in_bounded_memory(tmp_path, record):
    path = tmp_path / "hidden.csv"
    path.write_bytes(b"email;name\nzoe@example.com;" + record + b"\n")
    outcome = read_in_a_process(path)
    assert "more than 1,000 cells" in outcome.get("error", ""), outcome


def test_a_csv_file_with_mac_line_endings_and_long_quoted_cells_is_read(tmp_path):
    # Excel for Mac's "CSV (Macintosh)" ends its lines with CR alone; a cell in quotes may hold
    # line breaks and thousands of commas.
    path = tmp_path / "mac.csv"
    cell = b'"first line\r' + b"," * 5_000 + b'\rlast line"'
    rows = b"".join(b"p%d@example.com,%s\r" % (n, cell) for n in range(2_000))
    path.write_bytes(b"email,notes\r" + rows)
    outcome = read_in_a_process(path)
    assert outcome["count"] == 2_001, outcome
    assert outcome["rows"][1][1][0] == "p0@example.com"
    assert outcome["rows"][1][1][1].count(",") == 5_000
