"""Keeping an upload between its preview and its confirmation.

An upload is parsed once, as it arrives (15 MB of blank lines take seconds to read): what the
parse found, the rows that passed and every problem, is kept on the server under a random
token, and the preview, its problems CSV and the confirmation read that back. The browser
never carries the rows, so what is sent is what was shown.

The file's bytes are kept beside it until the upload is confirmed or expires, for one reason:
a file can be read more than one way (another sheet of a workbook, Mac Roman rather than
Windows-1252, the columns a person picks when the headers name none), and choosing another
reading parses the bytes again with that choice (upload_reread) and keeps what it found in
place of the first parse. The confirmation still reads only the kept parse.

JSON in a file in UPLOADS_DIR: a file rather than the cache, because a 50,000-row result is a
few MB and every web process must see it; JSON rather than pickle, because reading a pickle
runs whatever it says.

An upload belongs to the person who made it, not to a browser session: the file says who
(with the campaign, the mode and the file's name), so the preview survives logging out and in
again, another browser of the same person opens it, and anyone else is told it does not exist.

The recently rewarded are not kept: they depend on what the campaign sent since, so each read
looks them up again (a few queries). The same file confirmed from two tabs leaves the second
tab's rows out as "still being sent" instead of rewarding everyone twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from rewards.services.csv_import import (
    Columns,
    CsvParseResult,
    CsvProblem,
    recipients_flag_recent,
    recipients_parse_csv,
)
from rewards.services.recipient_files import Reading
from rewards.services.sending import RecipientRow

if TYPE_CHECKING:
    from campaigns.models import Campaign

UPLOAD_TOKEN = re.compile(r"^[0-9a-f]{32}$")
# The names of the files kept for an upload (".part" while being written).
_OURS = re.compile(r"^[0-9a-f]{32}\.(json|data|csv)(\.part)?$|^[0-9a-f]{32}\.part$")
UPLOAD_MAX_AGE = timedelta(days=1)
# Changed with the shape of what is kept: an upload kept in another shape is gone, not misread.
_FORMAT = 3


@dataclass(frozen=True)
class ReadChoice:
    """How a person asked the file to be read: "" and None leave the choice to the reader."""

    sheet: str = ""
    encoding: str = ""
    columns: Columns | None = None


@dataclass(frozen=True)
class Upload:
    """An upload as kept: whose it is, what it is for, and what its parse found."""

    owner_pk: int
    campaign_pk: int
    mode: str
    filename: str
    result: CsvParseResult
    choice: ReadChoice


def upload_create(
    *, data: bytes, mode: str, campaign_pk: int, filename: str, owner_pk: int
) -> tuple[str, CsvParseResult]:
    """Parse an upload and keep what the parse found, and the bytes, under a new token, as
    `owner_pk`'s.

    The token is "" when the file as a whole cannot be read (`result.error` says why): then
    nothing is kept. A file whose columns must be chosen is kept (`result.needs_columns`).
    """
    result = recipients_parse_csv(data=data, mode=mode)
    if not result.ok and not result.needs_columns:
        return "", result
    folder = _uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _uploads_prune(folder=folder)
    token = uuid.uuid4().hex
    _write(_data_path(token), data)
    meta = {"owner": owner_pk, "campaign": campaign_pk, "filename": filename, "mode": mode}
    _keep(token=token, meta=meta, choice=ReadChoice(), result=result)
    return token, result


def upload_reread(*, token: str, upload: Upload, choice: ReadChoice) -> CsvParseResult:
    """Read the upload's file again as `choice` says and keep what that found instead.

    A reading that fails as a whole (a sheet with nothing in it) keeps the earlier parse and
    returns the failed one, for its error."""
    try:
        data = _data_path(token).read_bytes()
    except FileNotFoundError:
        return CsvParseResult(error="That upload is no longer here. Upload the file again.")
    result = recipients_parse_csv(
        data=data,
        mode=upload.mode,
        sheet=choice.sheet,
        encoding=choice.encoding,
        columns=choice.columns,
    )
    if not result.ok and not result.needs_columns:
        return result
    meta = {
        "owner": upload.owner_pk,
        "campaign": upload.campaign_pk,
        "filename": upload.filename,
        "mode": upload.mode,
    }
    _keep(token=token, meta=meta, choice=choice, result=result)
    return result


def _keep(
    *, token: str, meta: dict[str, object], choice: ReadChoice, result: CsvParseResult
) -> None:
    kept = {
        "format": _FORMAT,
        **meta,
        "choice": {
            "sheet": choice.sheet,
            "encoding": choice.encoding,
            "columns": _columns_out(choice.columns),
        },
        "total_rows": result.total_rows,
        "recipient_column": result.recipient_column,
        "left_out_rows": result.left_out_rows,
        "rows": [[r.row_number, r.recipient, r.name] for r in result.rows],
        "problems": [[p.row, p.column, p.message, p.kind] for p in result.problems],
        "read_as": result.read_as,
        "encoding": result.encoding,
        "sheet": result.sheet,
        "sheets": result.sheets,
        "readings": [[r.encoding, r.row, r.text] for r in result.readings],
        "columns": _columns_out(result.columns),
        "needs_columns": result.needs_columns,
        "error": result.error if result.needs_columns else "",
        "sample": result.sample,
        "suggested": _columns_out(result.suggested),
    }
    _write(_path(token), json.dumps(kept).encode("utf-8"))


def _columns_out(columns: Columns | None) -> list[object] | None:
    if columns is None:
        return None
    return [columns.recipient, columns.name, columns.header, columns.chosen]


def _columns_in(kept: list[Any] | None) -> Columns | None:
    if kept is None:
        return None
    recipient, name, header, chosen = kept
    return Columns(recipient=recipient, name=name, header=header, chosen=chosen)


def _write(path: Path, data: bytes) -> None:
    # Written aside and renamed: a reader never finds half a file.
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)


def upload_read(*, token: str) -> Upload | None:
    """The upload kept under `token`, whoever made it (the caller compares `owner_pk`), its
    rows not yet flagged (upload_flag_recent); None when it is gone (expired, confirmed, or
    never made)."""
    if not UPLOAD_TOKEN.match(token):
        return None
    try:
        kept = json.loads(_path(token).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("format") != _FORMAT:
        return None
    result = CsvParseResult(
        rows=[RecipientRow(*row) for row in kept["rows"]],
        problems=[CsvProblem(*problem) for problem in kept["problems"]],
        total_rows=kept["total_rows"],
        left_out_rows=kept["left_out_rows"],
        recipient_column=kept["recipient_column"],
        read_as=kept["read_as"],
        encoding=kept["encoding"],
        sheet=kept["sheet"],
        sheets=kept["sheets"],
        readings=[Reading(*reading) for reading in kept["readings"]],
        columns=_columns_in(kept["columns"]),
        needs_columns=kept["needs_columns"],
        error=kept["error"],
        sample=[(number, cells) for number, cells in kept["sample"]],
        suggested=_columns_in(kept["suggested"]),
    )
    choice = kept["choice"]
    return Upload(
        owner_pk=kept["owner"],
        campaign_pk=kept["campaign"],
        mode=kept["mode"],
        filename=kept["filename"],
        result=result,
        choice=ReadChoice(
            sheet=choice["sheet"],
            encoding=choice["encoding"],
            columns=_columns_in(choice["columns"]),
        ),
    )


def upload_flag_recent(*, upload: Upload, campaign: Campaign) -> CsvParseResult:
    """The upload's parse with its recently rewarded rows flagged as of now."""
    recipients_flag_recent(result=upload.result, mode=upload.mode, campaign=campaign)
    return upload.result


def upload_delete(*, token: str) -> None:
    if UPLOAD_TOKEN.match(token):
        _path(token).unlink(missing_ok=True)
        _data_path(token).unlink(missing_ok=True)


def _uploads_dir() -> Path:
    return Path(settings.UPLOADS_DIR)


def _path(token: str) -> Path:
    return _uploads_dir() / f"{token}.json"


def _data_path(token: str) -> Path:
    return _uploads_dir() / f"{token}.data"


def _uploads_prune(*, folder: Path) -> None:
    # Uploads previewed and never confirmed: a day is plenty to decide. Only files named as
    # ours are touched (".data": the bytes; ".csv": the bytes, as an earlier version kept them).
    cutoff = time.time() - UPLOAD_MAX_AGE.total_seconds()
    for path in folder.iterdir():
        if not _OURS.match(path.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
