"""Keeping an upload between its preview and its confirmation.

An upload is parsed once, as it arrives (15 MB of blank lines take seconds to read): what the
parse found, the rows that passed and every problem, is kept on the server under a random
token, and the preview, its problems CSV and the confirmation read that back. The browser
never carries the rows and the bytes are not kept, so what is sent is what was shown.

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
from typing import TYPE_CHECKING

from django.conf import settings

from rewards.services.csv_import import (
    CsvParseResult,
    CsvProblem,
    recipients_flag_recent,
    recipients_parse_csv,
)
from rewards.services.sending import RecipientRow

if TYPE_CHECKING:
    from campaigns.models import Campaign

UPLOAD_TOKEN = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_MAX_AGE = timedelta(days=1)
# Changed with the shape of what is kept: an upload kept in another shape is gone, not misread.
_FORMAT = 2


@dataclass(frozen=True)
class Upload:
    """An upload as kept: whose it is, what it is for, and what its parse found."""

    owner_pk: int
    campaign_pk: int
    mode: str
    filename: str
    result: CsvParseResult


def upload_create(
    *, data: bytes, mode: str, campaign_pk: int, filename: str, owner_pk: int
) -> tuple[str, CsvParseResult]:
    """Parse an upload and keep what the parse found, under a new token, as `owner_pk`'s.

    The token is "" when the file as a whole cannot be read (`result.error` says why): then
    nothing is kept.
    """
    result = recipients_parse_csv(data=data, mode=mode)
    if not result.ok:
        return "", result
    folder = _uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _uploads_prune(folder=folder)
    token = uuid.uuid4().hex
    kept = {
        "format": _FORMAT,
        "owner": owner_pk,
        "campaign": campaign_pk,
        "filename": filename,
        "mode": mode,
        "total_rows": result.total_rows,
        "recipient_column": result.recipient_column,
        "left_out_rows": result.left_out_rows,
        "rows": [[r.row_number, r.recipient, r.name] for r in result.rows],
        "problems": [[p.row, p.column, p.message, p.kind] for p in result.problems],
    }
    # Written aside and renamed: a reader never finds half a file.
    path = _path(token)
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(kept), encoding="utf-8")
    os.replace(partial, path)
    return token, result


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
    )
    return Upload(
        owner_pk=kept["owner"],
        campaign_pk=kept["campaign"],
        mode=kept["mode"],
        filename=kept["filename"],
        result=result,
    )


def upload_flag_recent(*, upload: Upload, campaign: Campaign) -> CsvParseResult:
    """The upload's parse with its recently rewarded rows flagged as of now."""
    recipients_flag_recent(result=upload.result, mode=upload.mode, campaign=campaign)
    return upload.result


def upload_delete(*, token: str) -> None:
    if UPLOAD_TOKEN.match(token):
        _path(token).unlink(missing_ok=True)


def _uploads_dir() -> Path:
    return Path(settings.UPLOADS_DIR)


def _path(token: str) -> Path:
    return _uploads_dir() / f"{token}.json"


def _uploads_prune(*, folder: Path) -> None:
    # Uploads previewed and never confirmed: a day is plenty to decide. Only files named as
    # ours are touched (".csv": the bytes, as an earlier version kept them).
    cutoff = time.time() - UPLOAD_MAX_AGE.total_seconds()
    for path in folder.iterdir():
        if path.suffix not in {".json", ".part", ".csv"} or not UPLOAD_TOKEN.match(path.stem):
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
