"""The ledger's hot statements on PostgreSQL: each one round trip, the rows as arrays or JSON.

rewards/services/sending.py and chunk.py decide what is written and call these on PostgreSQL;
elsewhere (SQLite, in `make run`) they write the same through the ORM. Only rows still in the
state the caller saw are written, as the ORM path does: the conditional UPDATE is in the
statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper

from rewards.models import Batch, MirroredReward, Send, SendEvent
from rewards.models.ledger import Mode

if TYPE_CHECKING:
    from rewards.services.sending import RecipientRow

# The columns an answer writes (the ORM path of rewards/services/chunk.py writes these too).
RECORD_FIELDS = (
    "state",
    "remote_id",
    "url",
    "transaction_id",
    "error_code",
    "error_message",
    "next_attempt_at",
    "attempts",
    "sent_at",
    "updated_at",
)


@dataclass(slots=True, eq=False)
class ClaimedSend:
    """A claimed row as a chunk needs it (the fields it reads and the answer writes), without
    a model instance: 250 Send() cost 2.7 ms of CPU a chunk, about a fifth of what a worker
    spends on a chunk besides the call itself."""

    pk: int
    batch_id: int
    row_number: int
    recipient: str
    name: str
    attempts: int
    attempt_started_at: datetime
    state: str = Send.State.SENDING
    remote_id: str = ""
    url: str = ""
    transaction_id: str = ""
    error_code: int | None = None
    error_message: str = ""
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    updated_at: datetime | None = None


@contextmanager
def _server_bound_cursor() -> Iterator[CursorWrapper]:
    """Django's cursor (its checks, its errors; the query log shows $1... without values),
    binding the values on the server: a client-bound cursor quotes every value into the
    statement's text in Python first."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = psycopg.Cursor(connection.connection)
    make = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    # The stubs name the database's own cursor CursorWrapper, what make_cursor returns.
    with make(raw) as cursor:  # type: ignore[arg-type]
        yield cursor


def events_insert(
    *, ids: list[int], from_state: str, to_states: list[str], notes: list[str], now: datetime
) -> None:
    """One SendEvent per row, in one statement (cheaper than thousands of model instances)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SendEvent._meta.db_table} "  # noqa: S608 - names are ours
            "(send_id, at, from_state, to_state, note) "
            "SELECT t.send_id, %s, %s, t.to_state, t.note "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(send_id, to_state, note)",
            [now, from_state, ids, to_states, notes],
        )


def sends_insert(*, batch: Batch, rows: Sequence[RecipientRow], now: datetime) -> None:
    """The batch's ledger rows, all waiting, by one COPY of text made here: an INSERT from
    arrays has each of 50,000 values quoted into the statement in Python, and psycopg's
    write_row converts each value of each row; this joins two escaped strings a row (a
    second of the confirm button's time, against a fifth of one)."""
    columns = (
        "batch_id, row_number, recipient, name, state, attempts, remote_id, url, "
        "link_not_recovered, transaction_id, error_message, updated_at"
    )
    # What every row has after its recipient and name: waiting, no attempt, nothing yet.
    rest = f"\t{Send.State.WAITING.value}\t0\t\t\tf\t\t\t{now.isoformat()}\n"
    head = f"{batch.pk}\t"
    data = "".join(
        f"{head}{int(row.row_number)}\t{_copy_text(row.recipient)}\t{_copy_text(row.name)}{rest}"
        for row in rows
    )
    # Django's cursor wraps psycopg's, whose COPY it does not offer: the same connection, in
    # the same transaction.
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {Send._meta.db_table} ({columns}) FROM STDIN") as copy,
    ):
        copy.write(data)


def _copy_text(value: str) -> str:
    """A value for COPY's text format: its backslashes and the characters that end a field or
    a row escaped (\\N, the NULL marker, cannot arise: its backslash is doubled)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


def sends_claim(*, batch_id: int, limit: int, now: datetime) -> list[ClaimedSend]:
    """The claim and its history in one statement (one round trip per chunk)."""
    send_table, event_table = Send._meta.db_table, SendEvent._meta.db_table
    batch_table = Batch._meta.db_table
    sql = f"""
        WITH candidates AS (
            SELECT s.id FROM {send_table} s
            WHERE s.batch_id = %(batch)s AND s.state = %(waiting)s
              AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= %(now)s)
              AND (SELECT b.state FROM {batch_table} b WHERE b.id = %(batch)s) = %(open)s
            ORDER BY s.row_number
            LIMIT %(limit)s
            FOR UPDATE OF s SKIP LOCKED
        ), claimed AS (
            UPDATE {send_table} s
            SET state = %(sending)s, attempts = s.attempts + 1, attempt_started_at = %(now)s,
                first_attempt_at = COALESCE(s.first_attempt_at, %(now)s),
                next_attempt_at = NULL, updated_at = %(now)s
            -- By primary key: a join on `state` could be planned from stale statistics
            -- (a new batch makes "waiting" common all at once).
            WHERE s.id = ANY(ARRAY(SELECT id FROM candidates)) AND s.state = %(waiting)s
            RETURNING s.id, s.row_number, s.recipient, s.name, s.attempts
        ), events AS (
            INSERT INTO {event_table} (send_id, at, from_state, to_state, note)
            SELECT id, %(now)s, %(waiting)s, %(sending)s, '' FROM claimed
        )
        SELECT id, row_number, recipient, name, attempts FROM claimed ORDER BY row_number
    """  # noqa: S608 - the names are ours, the values are parameters
    params: dict[str, int | str | datetime] = {
        "batch": batch_id,
        "waiting": Send.State.WAITING,
        "sending": Send.State.SENDING,
        "open": Batch.State.SENDING,
        "now": now,
        "limit": limit,
    }
    with _server_bound_cursor() as cursor:
        cursor.execute(sql, params)
        return [
            ClaimedSend(pk, batch_id, row_number, recipient, name, attempts, now)
            for pk, row_number, recipient, name, attempts in cursor.fetchall()
        ]


def sends_record(
    rows: Sequence[Send | ClaimedSend],
    *,
    notes: list[str],
    claimed_at: datetime,
    now: datetime,
) -> set[int]:
    """The answer for the whole chunk and its history, in one statement.

    Django's bulk_update builds a CASE per field and row: for 250 rows that costs seconds of
    CPU per chunk, more than the API call. This is one UPDATE from the rows' values that the
    database checks row by row: only rows still *sending* under this claim are written,
    RETURNING says which, and only those get a SendEvent. The values go as one JSON text
    (json.dumps is C; eleven arrays cost psycopg a fifth of the worker's time per chunk,
    dumped element by element in Python), the ids also as an array, whose length the
    planner knows.
    """
    send_table, event_table = Send._meta.db_table, SendEvent._meta.db_table
    sql = f"""
        WITH v AS (
            SELECT * FROM json_to_recordset(%(rows)s::json) AS v(
                id bigint, state text, remote_id text, url text, transaction_id text,
                error_code integer, error_message text, next_attempt_at timestamptz,
                attempts integer, sent_at timestamptz, note text)
        ), written AS (
            UPDATE {send_table} s
            SET state = v.state, remote_id = v.remote_id, url = v.url,
                transaction_id = v.transaction_id, error_code = v.error_code,
                error_message = v.error_message, next_attempt_at = v.next_attempt_at,
                attempts = v.attempts, sent_at = v.sent_at, updated_at = %(now)s
            FROM v
            WHERE s.id = ANY(%(id)s::bigint[]) AND s.id = v.id
              AND s.state = %(sending)s AND s.attempt_started_at = %(claimed_at)s
            RETURNING s.id, v.state, v.note
        ), events AS (
            INSERT INTO {event_table} (send_id, at, from_state, to_state, note)
            SELECT id, %(now)s, %(sending)s, state, note FROM written
        )
        SELECT id FROM written
    """  # noqa: S608 - the names are ours, the values are parameters
    values = [
        {"id": s.pk, "note": note, **{name: getattr(s, name) for name in _RECORDED}}
        for s, note in zip(rows, notes, strict=True)
    ]
    params: dict[str, Any] = {
        "rows": json.dumps(values, default=_json_value, ensure_ascii=False),
        "id": [s.pk for s in rows],
        "now": now,
        "sending": Send.State.SENDING,
        "claimed_at": claimed_at,
    }
    with _server_bound_cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


# What sends_record takes from each row (updated_at is the statement's `now`).
_RECORDED = tuple(name for name in RECORD_FIELDS if name != "updated_at")


def _json_value(value: object) -> str:
    """A datetime for sends_record's JSON, to the microsecond (DjangoJSONEncoder would cut
    it to the millisecond)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def recipients_recent(
    *, campaign_id: int, keys: list[str], by_id: bool, since: datetime, open_states: Sequence[str]
) -> tuple[set[str], set[str]]:
    """Of `keys` (recipient_key's), those this campaign rewarded since `since` (the ledger's
    sent rows and the mirror), and those in a ledger row of it still on its way: the same
    rules as the ORM's lookup in rewards/services/csv_import.py, in one statement for a whole
    upload. The keys go as one array, joined by PostgreSQL (a hashed semi-join), rather than
    thousands of `IN (...)` placeholders, whose building and quoting took seconds of Python
    for 50,000 rows. An array, not a JSON text (a third of a second cheaper to send): the
    planner knows an array's length, and took the 100 rows it guesses for
    jsonb_array_elements_text to loop over a campaign's 50,000 open rows for a minute."""
    send_table, batch_table = Send._meta.db_table, Batch._meta.db_table
    mirror_table = MirroredReward._meta.db_table
    if by_id:
        ledger_key, mode_is, mirror_key = "s.recipient", "b.mode = %(link_id)s", "m.recipient_id"
    else:
        ledger_key, mode_is = "lower(s.recipient)", "b.mode <> %(link_id)s"
        mirror_key = "lower(m.recipient_email)"
    sql = f"""
        WITH wanted AS (SELECT unnest(%(keys)s::text[]) AS key)
        SELECT DISTINCT {ledger_key}, s.state = %(sent)s
        FROM {send_table} s JOIN {batch_table} b ON b.id = s.batch_id
        WHERE b.campaign_id = %(campaign)s AND {mode_is}
          AND ((s.state = %(sent)s AND s.sent_at >= %(since)s)
               OR (s.state = ANY(%(open)s::text[]) AND b.created_at >= %(since)s))
          AND {ledger_key} IN (SELECT key FROM wanted)
        UNION ALL
        SELECT DISTINCT {mirror_key}, true
        FROM {mirror_table} m
        WHERE m.campaign_id = %(campaign)s AND m.date >= %(since)s
          AND {mirror_key} IN (SELECT key FROM wanted)
    """  # noqa: S608 - the names are ours, the values are parameters
    params: dict[str, Any] = {
        "keys": keys,
        "campaign": campaign_id,
        "since": since,
        "sent": Send.State.SENT,
        "open": list(open_states),
        "link_id": Mode.LINK_ID,
    }
    rewarded: set[str] = set()
    on_the_way: set[str] = set()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for key, sent in cursor.fetchall():
            (rewarded if sent else on_the_way).add(key)
    return rewarded, on_the_way
