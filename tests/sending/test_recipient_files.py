"""Reading recipient files as spreadsheets write them: each encoding, separator and workbook.

The files under files/ were made by LibreOffice (files/make.sh says how); the tests read the
committed files, so they need no LibreOffice.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.services.csv_import import Columns, Kind, column_choices, recipients_parse_csv
from rewards.services.recipient_files import (
    MAC_ROMAN,
    WINDOWS_1252,
    TableError,
    table_read,
)

FILES = Path(__file__).parent / "files"
PEOPLE = [
    (2, "zoe@example.com", "Zoë Müller"),
    (3, "francois@example.com", "François Lefèvre"),
    (4, "jose@example.com", "José Ñúñez"),
    (5, "ana@example.com", 'Ana "Nana" Sørensen; Jr'),
]


def parse(data: bytes, mode: str = "email", **kwargs):
    return recipients_parse_csv(data=data, mode=mode, **kwargs)


def rows(result) -> list[tuple[int, str, str]]:
    return [(r.row_number, r.recipient, r.name) for r in result.rows]


def kinds(result) -> list[tuple[int, str, str]]:
    return [(p.row, p.column, p.kind) for p in result.problems]


# --- CSV as spreadsheets save it -----------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "read_as"),
    [
        ("people-windows-1252-semicolons.csv", "Read as Windows-1252, separated by semicolons"),
        ("people-utf-16-tabs.txt", "Read as UTF-16, separated by tabs"),
        ("people-utf-8-bom.csv", "Read as UTF-8 (with BOM), separated by commas"),
        ("people.csv", "Read as UTF-8, separated by commas"),
    ],
)
def test_it_reads_each_csv_a_spreadsheet_saves_with_its_accents(filename, read_as):
    result = parse((FILES / filename).read_bytes())
    assert result.ok, result.error
    assert rows(result) == PEOPLE
    assert result.problems == []
    assert result.read_as == read_as


def test_a_unicode_file_is_read_one_way_only():
    # A UTF-8 file read as Windows-1252 is only ever mojibake ("ZoÃ«"): nothing to offer.
    for filename in ["people.csv", "people-utf-8-bom.csv", "people-utf-16-tabs.txt"]:
        assert parse((FILES / filename).read_bytes()).readings == []


def test_a_windows_1252_file_offers_the_mac_roman_reading_of_its_first_differing_row():
    result = parse((FILES / "people-windows-1252-semicolons.csv").read_bytes())
    assert [(r.encoding, r.row, r.text) for r in result.readings] == [
        (WINDOWS_1252, 2, "zoe@example.com;Zoë Müller;1234"),
        (MAC_ROMAN, 2, "zoe@example.com;ZoÎ M¸ller;1234"),
    ]


def test_a_mac_roman_file_is_read_as_mac_roman_and_offers_windows_1252():
    # Excel for Mac saves "CSV" in Mac Roman: "é" is byte 0x8E there, "Ž" in Windows-1252.
    data = "email,name\njose@example.com,José Müller\n".encode("mac_roman")
    result = parse(data)
    assert rows(result) == [(2, "jose@example.com", "José Müller")]
    assert result.encoding == MAC_ROMAN
    assert [r.encoding for r in result.readings] == [MAC_ROMAN, WINDOWS_1252]
    # The person may choose the other reading.
    other = parse(data, encoding=WINDOWS_1252)
    assert rows(other) == [(2, "jose@example.com", "JosŽ MŸller")]
    assert other.read_as == "Read as Windows-1252, separated by commas"


def test_a_file_only_mac_roman_can_read_is_read_so_without_a_choice():
    # Byte 0x81 is undefined in Windows-1252 ("Å" in Mac Roman).
    result = parse("email,name\nasa@example.com,Åsa\n".encode("mac_roman"))
    assert rows(result) == [(2, "asa@example.com", "Åsa")]
    assert result.readings == []


def test_a_utf16_file_that_breaks_off_is_refused_with_why():
    data = "email\tname\nzoe@example.com\tZoë\n".encode("utf-16")[:-1]
    result = parse(data)
    assert "not UTF-16" in result.error and result.rows == []


def test_an_old_excel_file_is_refused_with_what_to_do():
    result = parse(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    assert ".xls" in result.error and ".xlsx" in result.error


def test_a_sheet_asked_of_a_csv_file_is_refused():
    with pytest.raises(TableError, match="Only an Excel workbook"):
        table_read(data=b"email\na@example.com\n", sheet="Sheet1")


# --- Workbooks -----------------------------------------------------------------------------


def test_it_reads_the_first_sheet_of_a_workbook_as_a_person_sees_it():
    result = parse((FILES / "workbook.xlsx").read_bytes())
    assert result.ok, result.error
    # Row 4 is formulas: their values as calculated when the file was saved.
    assert rows(result) == [
        (2, "zoe@example.com", "Zoë Müller"),
        (4, "francois@example.com", "François Lefèvre"),
    ]
    # A date where the email should be is that row's problem, not a crash.
    assert kinds(result) == [(3, "E-mail", Kind.UNREADABLE_CELL)]
    assert "2026-03-14" in result.problems[0].message
    assert result.sheets == ["Customers", "Link IDs"]
    assert result.read_as == "Read as an Excel workbook, the sheet “Customers” (one of 2)"


def test_it_reads_the_sheet_a_person_picks_and_numeric_ids_as_they_show():
    result = parse((FILES / "workbook.xlsx").read_bytes(), mode="link-id", sheet="Link IDs")
    assert result.ok, result.error
    assert rows(result) == [(2, "1234", "José Ñúñez"), (3, "9876543210", "Ana Sørensen")]


def test_a_sheet_that_is_not_there_is_refused_with_the_sheets_there_are():
    result = parse((FILES / "workbook.xlsx").read_bytes(), sheet="Summer")
    assert result.error == (
        "This workbook has no sheet “Summer”; its sheets are “Customers”, “Link IDs”."
    )


def test_a_workbook_with_unknown_headers_asks_which_column_is_which():
    result = parse((FILES / "unknown-headers.xlsx").read_bytes())
    assert result.needs_columns and not result.ok
    assert result.sample == [
        (1, ["Courriel", "Prénom et nom", "Ville"]),
        (2, ["zoe@example.com", "Zoë Müller", "Genève"]),
        (3, ["francois@example.com", "François Lefèvre", "Besançon"]),
    ]
    # The guess: the column of addresses, under a header row.
    assert result.suggested == Columns(recipient=0, name=None, header=True, chosen=True)

    chosen = parse(
        (FILES / "unknown-headers.xlsx").read_bytes(),
        columns=Columns(recipient=0, name=1, header=True, chosen=True),
    )
    assert chosen.ok, chosen.error
    assert rows(chosen) == [
        (2, "zoe@example.com", "Zoë Müller"),
        (3, "francois@example.com", "François Lefèvre"),
    ]
    assert chosen.recipient_column == "Courriel"


def test_a_first_row_that_is_an_address_is_offered_as_data():
    # No header at all, and the address not in the first column.
    result = parse(b"Ann Lee,ann@example.com\nBob Ray,bob@example.com\n")
    assert result.needs_columns
    assert result.suggested == Columns(recipient=1, name=None, header=False, chosen=True)
    chosen = parse(
        b"Ann Lee,ann@example.com\nBob Ray,bob@example.com\n",
        columns=Columns(recipient=1, name=0, header=False, chosen=True),
    )
    assert rows(chosen) == [(1, "ann@example.com", "Ann Lee"), (2, "bob@example.com", "Bob Ray")]
    assert chosen.recipient_column == "column B"


def test_the_same_file_as_csv_and_as_xlsx_reads_to_the_same_rows():
    from_csv = parse((FILES / "unknown-headers.csv").read_bytes())
    from_xlsx = parse((FILES / "unknown-headers.xlsx").read_bytes())
    assert from_csv.sample == from_xlsx.sample


def _workbook(*rows: list[object]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_formula_saved_without_its_value_is_a_row_problem():
    # openpyxl writes formulas and no values (no spreadsheet ever calculated them).
    data = _workbook(["email", "name"], ["ann@example.com", '=CONCAT("An","n")'], ["bo@x.org"])
    result = parse(data)
    assert kinds(result) == [(2, "name", Kind.UNREADABLE_CELL)]
    assert "formula saved without its value" in result.problems[0].message
    assert rows(result) == [(3, "bo@x.org", "")]


def test_a_date_in_the_name_column_is_shown_as_the_date():
    data = _workbook(["email", "name"], ["ann@example.com", datetime(2026, 5, 1)])
    assert rows(parse(data)) == [(2, "ann@example.com", "2026-05-01")]


def test_numbers_read_as_a_person_sees_them():
    data = _workbook(["recipient_id", "name"], [1234, 12.5], [5678.0, True], [7e20, None])
    assert rows(parse(data, mode="link-id")) == [
        (2, "1234", "12.5"),
        (3, "5678", "TRUE"),
        # All its digits, as under General, "0" or "@" (openpyxl stores "7e+20").
        (4, "700000000000000000000", ""),
    ]


def test_numbers_read_as_their_number_format_shows_them():
    # Made by LibreOffice (files/numbers.fods): its Member IDs are in a "00000" format.
    table = table_read(data=(FILES / "numbers.xlsx").read_bytes())
    assert list(table.rows) == [
        (1, ["Member ID", "Name", "Card", "Format"]),
        # Padded to the format's width, keeping the sign; a 21-digit whole number in full
        # (stored "7E+020"), under General, "0" and "@" alike.
        (2, ["00123", "Zoë Müller", "700000000000000000000", "General"]),
        (3, ["-00045", "François Lefèvre", "700000000000000000000", "0"]),
        # A fraction under a format of whole numbers is shown as stored: LibreOffice shows
        # 00124, but an ID is never rounded into another one.
        (4, ["123.5", "José Ñúñez", "700000000000000000000", "@"]),
        # Wider than the format; 21 digits of which the file keeps 15 (as LibreOffice shows).
        (5, ["1234567", "Ana Sørensen", "123456789012346000000", "0"]),
    ]
    result = parse((FILES / "numbers.xlsx").read_bytes(), mode="link-id")
    # No recipient_id header: the column is chosen, and its IDs keep their zeros.
    chosen = parse(
        (FILES / "numbers.xlsx").read_bytes(),
        mode="link-id",
        columns=Columns(recipient=0, name=1, header=True, chosen=True),
    )
    assert result.needs_columns
    assert rows(chosen)[:2] == [(2, "00123", "Zoë Müller"), (3, "-00045", "François Lefèvre")]


def test_a_workbook_over_fifty_thousand_rows_is_refused_with_the_limit():
    data = _workbook(["email"], *([f"r{n}@example.com"] for n in range(11)))
    result = parse(data, max_rows=10)
    assert "more than 10 rows" in result.error and result.rows == []


def test_an_empty_workbook_says_so():
    assert "empty" in parse(_workbook()).error


def test_the_xlsx_templates_read_cleanly_in_their_modes(as_marketer):
    from django.urls import reverse

    for mode in ["email", "link", "link-id"]:
        response = as_marketer.get(reverse("rewards:send_template_xlsx", args=[mode]))
        assert response.status_code == 200
        assert response["Content-Disposition"].endswith(f'-{mode}-template.xlsx"')
        result = parse(response.content, mode=mode)
        assert result.ok and result.problems == [] and len(result.rows) == 1, result.error


def test_an_xlsx_upload_is_previewed_with_how_it_was_read(
    as_marketer, campaign, settings, tmp_path
):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    settings.UPLOADS_DIR = tmp_path
    response = as_marketer.post(
        reverse("rewards:send_upload"),
        {
            "bulk-campaign": campaign.pk,
            "bulk-mode": "email",
            "bulk-file": SimpleUploadedFile("w.xlsx", (FILES / "workbook.xlsx").read_bytes()),
        },
        follow=True,
    )
    page = response.content.decode()
    assert "Read as an Excel workbook, the sheet “Customers” (one of 2)" in page
    assert "Zoë Müller" in page
    # Another sheet, read from the kept file.
    token = response.redirect_chain[-1][0].rstrip("/").rsplit("/", 1)[-1]
    response = as_marketer.post(
        reverse("rewards:send_reread", args=[token]),
        {"what": "sheet", "sheet": "Link IDs"},
        follow=True,
    )
    page = response.content.decode()
    assert "the sheet “Link IDs”" in page
    # Its headers name no email column: the preview asks which column is which.
    assert 'id="choose-columns"' in page
    assert "José Ñúñez" in page


def _replace_part(base: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(out, "w") as target:
        for member in source.infolist():
            data = content if member.filename == name else source.read(member)
            target.writestr(member.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def test_a_damaged_workbook_is_refused_with_why():
    data = (FILES / "workbook.xlsx").read_bytes()
    result = parse(data[: len(data) // 2])
    assert "could not be read as one" in result.error
    broken = _replace_part(data, "xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row>")
    assert "could not be read as one" in parse(broken).error


# --- The preview's choices -----------------------------------------------------------------


def _upload(client, campaign, data: bytes, name: str, mode: str = "email") -> str:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    response = client.post(
        reverse("rewards:send_upload"),
        {
            "bulk-campaign": campaign.pk,
            "bulk-mode": mode,
            "bulk-file": SimpleUploadedFile(name, data),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return response["Location"]


@pytest.fixture
def uploads(settings, tmp_path):
    settings.UPLOADS_DIR = tmp_path / "uploads"
    return settings.UPLOADS_DIR


def test_a_person_maps_the_columns_of_unknown_headers_then_sends(as_marketer, campaign, uploads):
    from rewards.models import Batch

    location = _upload(
        as_marketer, campaign, (FILES / "unknown-headers.xlsx").read_bytes(), "u.xlsx"
    )
    page = as_marketer.get(location).content.decode()
    assert "No email column found" in page and 'id="choose-columns"' in page
    # Nothing to confirm until the columns are chosen: a post sends nothing.
    as_marketer.post(location, {})
    assert Batch.objects.count() == 0

    reread = location + "read/"
    response = as_marketer.post(
        reread, {"what": "columns", "recipient": "0", "name": "1", "header": "on"}, follow=True
    )
    page = response.content.decode()
    assert "the recipients from column A" in page
    assert "<td>Zoë Müller</td>" in page
    assert 'Send to the <span id="send-count">2</span>' in page
    as_marketer.post(location, {})
    batch = Batch.objects.get()
    assert list(batch.sends.order_by("row_number").values_list("recipient", "name")) == [
        ("zoe@example.com", "Zoë Müller"),
        ("francois@example.com", "François Lefèvre"),
    ]
    # The upload and its kept bytes are gone once confirmed.
    assert list(uploads.iterdir()) == []


def test_the_preview_refuses_choices_the_file_does_not_offer(as_marketer, campaign, uploads):
    location = _upload(
        as_marketer, campaign, (FILES / "unknown-headers.xlsx").read_bytes(), "u.xlsx"
    )
    reread = location + "read/"
    for choice in [
        {"what": "columns", "recipient": "7"},
        {"what": "sheet", "sheet": "Nope"},
        {"what": "encoding", "encoding": "utf-7"},
    ]:
        response = as_marketer.post(reread, choice, follow=True)
        assert "That choice is not one this file offers." in response.content.decode()
    response = as_marketer.post(
        reread, {"what": "columns", "recipient": "1", "name": "1"}, follow=True
    )
    assert "two different columns" in response.content.decode()


def test_a_person_reads_a_legacy_file_the_other_way(as_marketer, campaign, uploads):
    data = "email,name\njose@example.com,José\n".encode("cp1252")
    location = _upload(as_marketer, campaign, data, "l.csv")
    assert "<td>José</td>" in as_marketer.get(location).content.decode()
    response = as_marketer.post(
        location + "read/", {"what": "encoding", "encoding": "mac_roman"}, follow=True
    )
    page = response.content.decode()
    assert "Read as Mac Roman, separated by commas" in page
    assert "<td>JosÈ</td>" in page


def test_someone_elses_upload_cannot_be_read_again(client, as_marketer, campaign, uploads, cast):
    location = _upload(as_marketer, campaign, (FILES / "workbook.xlsx").read_bytes(), "w.xlsx")
    client.force_login(cast["admin"])
    response = client.post(location + "read/", {"what": "sheet", "sheet": "Link IDs"})
    assert response.status_code in (403, 404)


def test_a_column_choice_without_a_recipient_column_changes_nothing(as_marketer, campaign, uploads):
    location = _upload(
        as_marketer, campaign, (FILES / "unknown-headers.xlsx").read_bytes(), "u.xlsx"
    )
    response = as_marketer.post(location + "read/", {"what": "columns", "name": "1"}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "No email column found" in page and 'id="choose-columns"' in page


def _wide_workbook() -> bytes:
    # 40 columns, the addresses in AD (the 30th) under a header no list of ours names.
    header = [f"Champ {n}" for n in range(1, 41)]
    header[29], header[30] = "Courriel", "Prénom et nom"
    first = [f"a{n}" for n in range(1, 41)]
    first[29], first[30] = "zoe@example.com", "Zoë Müller"
    second = [f"b{n}" for n in range(1, 41)]
    second[29], second[30] = "francois@example.com", "François Lefèvre"
    return _workbook(header, first, second)


def test_a_sheet_wider_than_26_columns_offers_every_column_with_its_letter_and_header():
    result = parse(_wide_workbook())
    assert result.needs_columns
    choices = column_choices(sample=result.sample)
    assert len(choices) == 40
    assert choices[0] == (0, "Column A: Champ 1")
    assert choices[25] == (25, "Column Z: Champ 26")
    assert choices[29] == (29, "Column AD: Courriel")
    assert choices[39] == (39, "Column AN: Champ 40")
    # The guess looks past Z too.
    assert result.suggested == Columns(recipient=29, name=None, header=True, chosen=True)


def test_the_widest_of_the_first_rows_gives_the_columns_and_a_long_header_is_kept_short():
    sample = [
        (1, ["Adresse électronique du destinataire principal", "", "\ufeffNom"]),
        (2, ["zoe@example.com", "Zoë", "x", "a note past the headers"]),
    ]
    assert column_choices(sample=sample) == [
        (0, "Column A: Adresse électronique du desti…"),
        (1, "Column B"),
        (2, "Column C: Nom"),
        (3, "Column D"),
    ]


def test_a_person_maps_a_column_past_z_in_the_preview_and_the_rows_validate(
    as_marketer, campaign, uploads
):
    location = _upload(as_marketer, campaign, _wide_workbook(), "wide.xlsx")
    page = as_marketer.get(location).content.decode()
    assert '<option value="29" selected>Column AD: Courriel</option>' in page
    assert '<option value="30">Column AE: Prénom et nom</option>' in page
    response = as_marketer.post(
        location + "read/",
        {"what": "columns", "recipient": "29", "name": "30", "header": "on"},
        follow=True,
    )
    page = response.content.decode()
    assert "That choice is not one this file offers." not in page
    assert "the recipients from column AD" in page
    assert 'Send to the <span id="send-count">2</span>' in page
    assert "<td>François Lefèvre</td>" in page


_WORKBOOK = (FILES / "workbook.xlsx").read_bytes()


@settings(max_examples=200, deadline=None)
@given(
    at=st.integers(min_value=0, max_value=len(_WORKBOOK) - 1),
    byte=st.integers(min_value=0, max_value=255),
    cut=st.booleans(),
)
def test_a_damaged_workbook_gives_a_clear_error_or_a_valid_parse(at, byte, cut):
    data = _WORKBOOK[:at] if cut else _WORKBOOK[:at] + bytes([byte]) + _WORKBOOK[at + 1 :]
    result = parse(data)
    if result.ok:
        assert result.total_rows == len(result.rows) + len(result.left_out_rows)
    else:
        assert result.error.endswith(".") and result.rows == []
