"""On PostgreSQL the rewards' CSV is written by COPY; its bytes are the Python writer's, for any
filter and any cell a person or Mokugift could put in the mirror. PostgreSQL only: it fails
under CI=true when PostgreSQL is missing."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.db import connection
from django.db.models import F, TextField, Value
from django.db.models.functions import Cast
from django.urls import reverse

from rewards.selectors.mirror import RewardFilters, rewards_filter
from rewards.services import export
from tests.conftest import need_service
from tests.mirror.helpers import mirror_add, send_add

# Written out here, not taken from export.FORMULA_STARTS: dropping one there must fail.
STARTS = ["=", "+", "-", "@", "\t", "\r"]
HOSTILE = [
    *(start + "SUM(1+1)" for start in STARTS),
    *STARTS,
    '=HYPERLINK("http://evil.test","click")',
    '"',
    '""',
    'say "hi"',
    '"quoted"',
    ",",
    "a,b",
    "\n",
    "line\nbreak",
    "crlf\r\nin it",
    "ends with a line feed\n",
    "ends with a carriage return\r",
    " leading space",
    "trailing space ",
    "'already an apostrophe",
    "Zoë Løvås 木の贈り物 🌳",
    "é=début",
    "\\.",
    "\\N",
    "NULL",
    "tab\tinside",
    # Our own row end, in a cell: it must not end a row.
    export.ROW_END_CELL,
    ',"~,"',
    'x,"~,"\ny',
    '~,"\n',
    "%s %(name)s 100%",
    "x" * 95,
]
# Every other ASCII character in front of a text: only STARTS get the apostrophe.
PREFIXED = [chr(code) + "tail" for code in range(1, 128)]


def _postgresql():
    if connection.vendor != "postgresql":
        need_service("the COPY path is PostgreSQL's")


def _both(rewards, **kw) -> tuple[bytes, bytes]:
    return (
        b"".join(export.rewards_csv(rewards=rewards, via="copy", **kw)),
        b"".join(export.rewards_csv(rewards=rewards, via="python", **kw)),
    )


@pytest.fixture
def hostile(campaign, other_campaign, django_user_model):
    """A mirror whose every text cell is one of HOSTILE (campaign names, sender names, reward
    IDs, emails, recipient IDs, names, links), with dates carrying microseconds, a reward
    missing, rewards sent from here (ledger row, batch, sender) and from elsewhere."""
    from campaigns.models import Campaign
    from rewards.models import Send

    campaigns = [campaign, other_campaign]
    for n, value in enumerate(HOSTILE[:8]):
        campaigns.append(Campaign.objects.create(name=value, campaign_id=f"h-{n}"))
    senders = [None]
    for n, value in enumerate(HOSTILE[::3]):
        senders.append(django_user_model.objects.create_user(f"{value}-{n}"[:150]))
    when = dt.datetime(2026, 5, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    for n, value in enumerate(HOSTILE + PREFIXED + ["", ""]):
        date = when - dt.timedelta(days=n % 45, microseconds=n * 37)
        reward = mirror_add(
            campaigns[n % len(campaigns)],
            date,
            remote_id=(value or "r")[:90] + f"-{n}" if n % 4 else f"{n}{value}"[:100],
            recipient_email=value[:254],
            recipient_id=HOSTILE[(n + 1) % len(HOSTILE)] if n % 3 else "",
            tree_count=n % 5,
            missing_since=date + dt.timedelta(seconds=1.5) if n % 7 == 0 else None,
        )
        if n % 2:
            reward.send = send_add(
                reward.campaign,
                remote_id=reward.remote_id,
                sent_at=date,
                by=senders[n % len(senders)],
                name=HOSTILE[(n + 2) % len(HOSTILE)][:200],
                url=HOSTILE[(n + 5) % len(HOSTILE)],
                state=[Send.State.SENT, Send.State.UNKNOWN, Send.State.FAILED][n % 3],
            )
            reward.save()
    return {"campaigns": campaigns, "senders": senders}


FILTERS = [
    {},
    {"source": "dashboard"},
    {"source": "elsewhere"},
    {"date_from": dt.date(2026, 5, 1), "date_to": dt.date(2026, 5, 20)},
    {"missing_only": True, "newest_first": False},
    {"search": '"'},
    {"search": "%"},
    {"search": "'"},
    {"search": "木"},
    {"search": "nothing at all"},
]


@pytest.mark.parametrize("params", FILTERS, ids=repr)
def test_the_copy_file_is_the_python_file_byte_for_byte(hostile, params):
    _postgresql()
    rewards = rewards_filter(filters=RewardFilters(**params))
    copied, written = _both(rewards)
    assert copied == written
    assert copied.count(b"\r\n") >= rewards.count() + 1  # every row ends as the csv module's
    assert export.ROW_END not in copied


def test_the_copy_file_is_the_python_file_for_a_campaign_a_batch_and_a_sender(hostile):
    _postgresql()
    from rewards.models import Send

    send = Send.objects.filter(batch__created_by__isnull=False).order_by("pk").first()
    for params in (
        {"campaign_ids": (hostile["campaigns"][3].pk,)},
        {"batch_id": send.batch_id},
        {"sender_id": send.batch.created_by_id},
        {"visible_ids": {c.pk for c in hostile["campaigns"][2:6]}},
    ):
        copied, written = _both(rewards_filter(filters=RewardFilters(**params)))
        assert copied == written, params
        assert copied.count(b"\r\n") > 1, params


def test_the_hostile_cells_come_out_neutralised_and_whole(hostile):
    _postgresql()
    import csv
    import io

    copied, _ = _both(rewards_filter(filters=RewardFilters()))
    rows = list(csv.reader(io.StringIO(copied.decode(), newline="")))
    assert rows[0] == export.REWARD_HEADER
    emails = {row[3] for row in rows[1:]}
    assert "'=SUM(1+1)" in emails and "'\rSUM(1+1)" in emails and "'\t" in emails
    assert "line\nbreak" in emails and 'say "hi"' in emails and "Zoë Løvås 木の贈り物 🌳" in emails
    assert export.ROW_END_CELL in emails and 'x,"~,"\ny' in emails
    assert "!tail" in emails and "'+tail" in emails
    assert {len(row) for row in rows} == {len(export.REWARD_HEADER)}


@pytest.mark.parametrize("piece", [1, 7, 300])
def test_rows_split_across_pieces_come_out_the_same(hostile, monkeypatch, piece):
    _postgresql()
    monkeypatch.setattr(export, "PIECE_SIZE", piece)
    rewards = rewards_filter(filters=RewardFilters())
    pieces = list(export.rewards_csv(rewards=rewards, via="copy"))
    assert len(pieces) > 2 and all(pieces)
    assert b"".join(pieces) == _both(rewards)[1]


def test_the_file_is_in_utc_whatever_the_time_zones(hostile, settings):
    _postgresql()
    from django.utils import timezone

    settings.TIME_ZONE = "Asia/Tokyo"
    rewards = rewards_filter(filters=RewardFilters())
    with timezone.override("Asia/Tokyo"):
        copied, written = _both(rewards)
    assert copied == written
    assert b"2026-05-31 23:59:59," in copied
    # COPY says UTC itself: a session in another zone (which the ORM would misread, as it
    # takes the session to be in Django's zone) changes nothing.
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'America/St_Johns'")
        try:
            assert b"".join(export.rewards_csv(rewards=rewards, via="copy")) == copied
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")


def test_the_sql_twins_say_what_the_python_rules_say(hostile):
    _postgresql()
    from campaigns.models import Campaign

    values = [*HOSTILE, *PREFIXED, "", None]
    one = Campaign.objects.order_by("pk")[:1]
    for value in values:
        (sql,) = one.annotate(safe=export.TextSafe(Value(value))).values_list("safe").get()
        assert (sql or "") == export.text_safe(value), repr(value)
        assert sql != "", "the empty text is NULL, for COPY"
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    moments = [
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(2026, 6, 1, 8, 30, 0, 500_000, tzinfo=tokyo),
        dt.datetime(1000, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        dt.datetime(999, 2, 3, 4, 5, 6, 7, tzinfo=dt.UTC),
        None,
    ]
    for moment in moments:
        # As COPY writes it: the type's output function, that of a cast to text.
        text = Cast(export.UtcText(Value(moment)), TextField())
        (sql,) = one.annotate(text=text).values_list("text").get()
        assert (sql or "") == export.utc_text(moment), moment
    # And over the mirror's own columns, each row's.
    from rewards.models import MirroredReward

    for email, safe, date, text in MirroredReward.objects.values_list(
        "recipient_email",
        export.TextSafe(F("recipient_email")),
        "date",
        Cast(export.UtcText("date"), TextField()),
    ):
        assert (safe or "") == export.text_safe(email)
        assert text == export.utc_text(date)


def test_the_page_downloads_the_copy_file_as_a_stream(client, manager, hostile):
    _postgresql()
    client.force_login(manager)
    response = client.get(reverse("rewards:list_csv"))
    assert response.streaming
    page = b"".join(response.streaming_content)
    assert page == _both(rewards_filter(filters=RewardFilters()))[1]


@pytest.mark.django_db(transaction=True)
def test_a_download_closed_half_way_leaves_the_connection_usable(client, manager, monkeypatch):
    # Outside a test's transaction, as a request runs: the COPY is cancelled and read to its
    # end by psycopg, and the same connection answers the next query.
    _postgresql()
    from campaigns.models import Campaign
    from rewards.models import MirroredReward

    monkeypatch.setattr(export, "PIECE_SIZE", 1)
    spring = Campaign.objects.create(name="Spring", campaign_id="spring")
    when = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    MirroredReward.objects.bulk_create(
        MirroredReward(
            campaign=spring, remote_id=f"r{n}", date=when, first_seen_at=when, last_seen_at=when
        )  # fmt: skip
        for n in range(5000)
    )
    client.force_login(manager)
    response = client.get(reverse("rewards:list_csv"))
    pieces = iter(response.streaming_content)
    assert next(pieces).startswith(b"campaign,reward_id,")
    assert next(pieces).startswith(b"Spring,r")
    response.close()
    assert MirroredReward.objects.count() == 5000
    assert connection.connection.info.transaction_status == 0  # idle, not in a COPY


def test_the_file_is_the_same_under_another_datestyle(hostile):
    # The dates are written by the timestamp's output function under the ISO DateStyle, by
    # to_char under any other.
    _postgresql()
    rewards = rewards_filter(filters=RewardFilters())
    iso = b"".join(export.rewards_csv(rewards=rewards, via="copy"))
    assert "date_trunc" in export.rewards_copy_sql(rewards=rewards)
    with connection.cursor() as cursor:
        cursor.execute("SET DateStyle = 'SQL, DMY'")
        try:
            assert "to_char" in export.rewards_copy_sql(rewards=rewards)
            assert b"".join(export.rewards_csv(rewards=rewards, via="copy")) == iso
        finally:
            cursor.execute("SET DateStyle = 'ISO, MDY'")
