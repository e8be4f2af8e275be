"""The rules of a recipient upload, one test per rule."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.services import campaign_create
from rewards.models import Batch, MirroredReward, Send
from rewards.mokugift import Recipient, RecipientRefused, recipient_list_build
from rewards.services.csv_import import (
    MAX_ROWS,
    Kind,
    csv_template,
    recipients_flag_recent,
    recipients_parse_csv,
)


def parse(text: str | bytes, mode: str = "email", **kwargs):
    data = text.encode() if isinstance(text, str) else text
    return recipients_parse_csv(data=data, mode=mode, **kwargs)


def written(*rows: list[str]) -> str:
    """The rows as a spreadsheet writes them: quoted where they need it, inner quotes doubled."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def kinds(result) -> list[tuple[int, str, str]]:
    return [(p.row, p.column, p.kind) for p in result.problems]


@pytest.fixture
def campaign(db):
    return campaign_create(
        actor=None, name="Spring", campaign_id="spring-1", environment="sandbox", passcode="pw"
    )


@pytest.mark.parametrize(
    "header",
    ["email,name", "E-mail,Name", "Email Address,Full Name", "MAIL , full name", "e_mail;name"],
)
def test_it_matches_email_and_name_headers_without_fuss(header):
    delimiter = ";" if ";" in header else ","
    result = parse(f"{header}\nsally@example.com{delimiter}Sally Chan\n")
    assert result.ok, result.error
    assert [(r.row_number, r.recipient, r.name) for r in result.rows] == [
        (2, "sally@example.com", "Sally Chan")
    ]


@pytest.mark.parametrize("header", ["id,name", "recipient_id,name", "Recipient ID,Full Name"])
def test_it_matches_id_headers_in_the_link_id_mode(header):
    result = parse(f"{header}\nuser1234,Sally Chan\n", mode="link-id")
    assert result.ok, result.error
    assert [(r.recipient, r.name) for r in result.rows] == [("user1234", "Sally Chan")]


def test_it_reads_the_columns_in_any_order_and_ignores_others():
    result = parse("Company,Full Name,Email Address\nAcme,Sally Chan,sally@example.com\n")
    assert [(r.recipient, r.name) for r in result.rows] == [("sally@example.com", "Sally Chan")]


def test_it_reads_utf8_with_a_bom():
    result = parse("\ufeffemail,name\nzoe@example.com,Zoë Ōtani\n".encode())
    assert result.ok, result.error
    assert result.rows[0].name == "Zoë Ōtani"


def test_it_reads_utf8_without_a_bom():
    result = parse("email,name\nzoe@example.com,Zoë Ōtani\n".encode())
    assert result.rows[0].name == "Zoë Ōtani"


def test_it_reads_a_file_that_is_not_utf8_as_windows_1252_and_says_so():
    # Excel's "CSV" on Windows; it was refused as "not UTF-8 text" before.
    result = parse("email,name\nzoe@example.com,Zoë\n".encode("cp1252"))
    assert result.ok, result.error
    assert result.rows[0].name == "Zoë"
    assert result.read_as == "Read as Windows-1252, separated by commas"


def test_it_refuses_a_spreadsheet_or_other_binary_file():
    result = parse(b"PK\x03\x04\x14\x00\x00\x00\x08\x00email")
    assert not result.ok
    assert "CSV" in result.error


def test_it_reads_semicolons():
    result = parse("email;name\nsally@example.com;Chan Sally\nbob@example.com;Bob\n")
    assert [r.recipient for r in result.rows] == ["sally@example.com", "bob@example.com"]


def test_it_reads_tabs_pasted_from_a_spreadsheet():
    result = parse("Email\tName\nsally@example.com\tSally Chan\n")
    assert [(r.recipient, r.name) for r in result.rows] == [("sally@example.com", "Sally Chan")]


def test_it_reads_quoted_fields():
    result = parse('email,name\n"sally@example.com","Sally ""Sal"" Chan; jr"\n')
    assert result.ok
    assert result.rows[0].name == 'Sally "Sal" Chan; jr'


def test_it_ignores_blank_lines_but_numbers_rows_as_a_spreadsheet_does():
    result = parse("email,name\n\nsally@example.com,Sally\n , \nnot-an-email,Bob\n\n")
    assert result.total_rows == 2
    assert [r.row_number for r in result.rows] == [3]
    assert kinds(result) == [(5, "email", Kind.BAD_EMAIL)]


def test_it_reads_a_pasted_list_of_addresses_without_a_header():
    result = parse("sally@example.com\nbob@example.com, Bob\n")
    assert [(r.row_number, r.recipient, r.name) for r in result.rows] == [
        (1, "sally@example.com", ""),
        (2, "bob@example.com", "Bob"),
    ]


def test_it_names_a_bad_email_with_its_row_and_column():
    result = parse("Email Address,name\nsally@example.com,Sally\nbob@example,Bob\n")
    assert kinds(result) == [(3, "Email Address", Kind.BAD_EMAIL)]
    assert "bob@example" in result.problems[0].message
    assert result.left_out_rows == [3]


def test_it_names_a_missing_recipient():
    result = parse("email,name\n,Sally\n")
    assert kinds(result) == [(2, "email", Kind.MISSING_RECIPIENT)]


def test_it_names_a_missing_recipient_id():
    result = parse("recipient_id,name\n,Sally\n", mode="link-id")
    assert kinds(result) == [(2, "recipient_id", Kind.MISSING_RECIPIENT)]
    assert "ID" in result.problems[0].message


@pytest.mark.parametrize("name", ["Chan, Sally", "Sally <boss>", "a > b"])
def test_it_flags_a_name_the_recipient_list_cannot_carry(name):
    result = parse(f'email,name\nsally@example.com,"{name}"\n')
    assert kinds(result) == [(2, "name", Kind.BAD_NAME)]
    assert result.rows == []


def test_it_points_at_a_quote_left_open_that_swallows_the_rows_after_it():
    result = parse('email,name\nann@example.com,"Ann\nbob@example.com,Bob\n')
    assert kinds(result) == [(2, "name", Kind.MULTILINE)]
    assert "never closed" in result.problems[0].message
    assert result.rows == []


def test_it_flags_a_name_that_is_too_long():
    result = parse(f"email,name\nsally@example.com,{'S' * 201}\n")
    assert kinds(result) == [(2, "name", Kind.NAME_TOO_LONG)]
    assert parse(f"email,name\nsally@example.com,{'S' * 200}\n").problems == []


@pytest.mark.parametrize("recipient_id", ["user 12", "user<12>", "u," * 3, "x" * 255])
def test_it_flags_an_id_the_recipient_list_cannot_carry(recipient_id):
    result = parse(f'recipient_id,name\n"{recipient_id}",Sally\n', mode="link-id")
    assert kinds(result) == [(2, "recipient_id", Kind.BAD_ID)]


def test_it_flags_a_duplicate_and_names_the_first_row():
    result = parse(
        "email,name\nsally@example.com,Sally\nbob@example.com,Bob\nSALLY@example.com,S\n"
    )
    assert kinds(result) == [(4, "email", Kind.DUPLICATE)]
    assert "row 2" in result.problems[0].message
    assert [r.row_number for r in result.rows] == [2, 3]


def test_it_compares_ids_exactly_when_looking_for_duplicates():
    result = parse("id\nAbc\nabc\nAbc\n", mode="link-id")
    assert kinds(result) == [(4, "id", Kind.DUPLICATE)]


def test_it_asks_for_the_right_column_in_each_mode():
    by_id = parse("email,name\nsally@example.com,Sally\n", mode="link-id")
    assert "recipient ID column" in by_id.error
    assert "email column" in by_id.error
    by_email = parse("recipient_id,name\nuser1,Sally\n", mode="link")
    assert "No email column" in by_email.error


def test_it_refuses_more_than_fifty_thousand_rows_and_says_the_limit():
    rows = "".join(f"r{n}@example.com\n" for n in range(MAX_ROWS + 1))
    result = parse("email\n" + rows)
    assert not result.ok
    assert "50,000" in result.error
    assert result.rows == []


def test_it_takes_exactly_fifty_thousand_rows():
    rows = "".join(f"r{n}@example.com\n" for n in range(MAX_ROWS))
    result = parse("email\n" + rows)
    assert result.ok, result.error
    assert len(result.rows) == MAX_ROWS


def test_it_says_when_a_file_is_empty_or_has_only_a_header():
    assert "empty" in parse("").error
    assert "empty" in parse("\n \n").error
    assert "no rows" in parse("email,name\n").error


def _sent(campaign, recipient, *, days_ago, mode="email", state=Send.State.SENT):
    batch = Batch.objects.create(campaign=campaign, mode=mode, source="csv")
    return Send.objects.create(
        batch=batch,
        row_number=2,
        recipient=recipient,
        state=state,
        sent_at=timezone.now() - timedelta(days=days_ago),
    )


def test_it_flags_a_recipient_this_campaign_rewarded_in_the_last_30_days(
    campaign, django_assert_max_num_queries
):
    _sent(campaign, "Sally@Example.com", days_ago=3)
    _sent(campaign, "old@example.com", days_ago=31)
    _sent(campaign, "failed@example.com", days_ago=1, state=Send.State.FAILED)
    other = campaign_create(
        actor=None, name="Other", campaign_id="other", environment="sandbox", passcode="pw"
    )
    _sent(other, "bob@example.com", days_ago=1)
    text = "email\nsally@example.com\nold@example.com\nfailed@example.com\nbob@example.com\n"
    with django_assert_max_num_queries(4):
        result = parse(text, campaign=campaign)
    assert [r.row_number for r in result.recently_rewarded] == [2]
    assert kinds(result) == [(2, "email", Kind.RECENTLY_REWARDED)]
    # A recently rewarded row passed the rules: it is left out unless someone says so.
    assert len(result.rows) == 4
    assert [r.row_number for r in result.rows_to_send(send_anyway=False)] == [3, 4, 5]
    assert len(result.rows_to_send(send_anyway=True)) == 4
    assert [p["row"] for p in result.left_out(send_anyway=False)] == [2]
    assert result.left_out(send_anyway=True) == []


def test_it_flags_a_recipient_of_a_batch_still_being_sent(campaign):
    # The same file uploaded twice, minutes apart: the first batch has not sent them yet.
    for state in ["waiting", "sending", "unknown"]:
        _sent(campaign, f"{state}@example.com", days_ago=0, state=state)
    _sent(campaign, "failed@example.com", days_ago=0, state="failed")
    text = "email\nwaiting@example.com\nsending@example.com\nunknown@example.com\n"
    result = parse(text + "failed@example.com\n", campaign=campaign)
    assert [r.row_number for r in result.recently_rewarded] == [2, 3, 4]
    assert "still being sent" in result.problems[0].message


def test_it_flags_a_recipient_the_mirror_shows_rewarded_in_the_last_30_days(campaign):
    now = timezone.now()
    for remote_id, email, recipient_id, days in [
        ("r1", "sally@example.com", "", 10),
        ("r2", "", "user1", 2),
        ("r3", "old@example.com", "", 40),
    ]:
        MirroredReward.objects.create(
            campaign=campaign,
            remote_id=remote_id,
            date=now - timedelta(days=days),
            recipient_email=email,
            recipient_id=recipient_id,
            first_seen_at=now,
            last_seen_at=now,
        )
    by_email = parse("email\nSALLY@example.com\nold@example.com\n", campaign=campaign)
    assert [r.recipient for r in by_email.recently_rewarded] == ["SALLY@example.com"]
    by_id = parse("id\nuser1\nuser2\n", mode="link-id", campaign=campaign)
    assert [r.recipient for r in by_id.recently_rewarded] == ["user1"]


def test_it_looks_for_recent_rewards_in_a_few_queries_for_a_large_file(
    campaign, django_assert_max_num_queries
):
    _sent(campaign, "r7@example.com", days_ago=1)
    rows = "".join(f"r{n}@example.com\n" for n in range(12_000))
    with django_assert_max_num_queries(6):
        result = parse("email\n" + rows, campaign=campaign)
    assert [r.recipient for r in result.recently_rewarded] == ["r7@example.com"]


def test_the_recent_lookup_of_a_whole_upload_is_one_statement_and_says_what_the_orm_says(
    campaign, django_assert_num_queries
):
    from django.db import connection

    from rewards.models.ledger import OPEN_STATES
    from rewards.services.csv_import import _recent_orm
    from rewards.services.ledger_postgresql import recipients_recent

    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (DATABASE_URL)")
    now = timezone.now()
    _sent(campaign, "Sent@Example.com", days_ago=2)
    _sent(campaign, "old@example.com", days_ago=40)
    _sent(campaign, "waiting@example.com", days_ago=0, state=Send.State.WAITING)
    _sent(campaign, "user7", days_ago=1, mode="link-id")
    _sent(campaign, 'Zoë "名" \\7', days_ago=1, mode="link-id")
    MirroredReward.objects.create(
        campaign=campaign,
        remote_id="m1",
        date=now - timedelta(days=1),
        recipient_email="Mirror@example.com",
        recipient_id="user9",
        first_seen_at=now,
        last_seen_at=now,
    )
    since, open_states = now - timedelta(days=30), OPEN_STATES
    for by_id, keys in [
        (False, ["sent@example.com", "old@example.com", "waiting@example.com", "user7"]),
        (False, ["mirror@example.com"] + [f"r{n}@example.com" for n in range(50_000)]),
        (True, ["user7", "user9", "sent@example.com", "nobody", 'Zoë "名" \\7']),
    ]:
        with django_assert_num_queries(1):
            found = recipients_recent(
                campaign_id=campaign.pk,
                keys=keys,
                by_id=by_id,
                since=since,
                open_states=open_states,
            )
        assert found == _recent_orm(keys=keys, by_id=by_id, since=since, campaign=campaign)
    assert recipients_recent(
        campaign_id=campaign.pk,
        keys=["sent@example.com", "waiting@example.com", "old@example.com"],
        by_id=False,
        since=since,
        open_states=OPEN_STATES,
    ) == ({"sent@example.com"}, {"waiting@example.com"})


def test_the_recent_lookup_stays_quick_beside_a_batch_of_the_campaign_still_being_sent(campaign):
    # The same campaign's last upload, 20,000 rows still waiting, and a new one of 20,000
    # others: a plan that loops over one for each of the other (as one did, when the keys went
    # as JSON whose length the planner could not see) takes a quarter of a minute here.
    from rewards.services.sending import RecipientRow, batch_create

    batch_create(
        campaign=campaign,
        mode="email",
        rows=[RecipientRow(row_number=i + 2, recipient=f"w{i}@example.com") for i in range(20_000)],
        source=Batch.Source.CSV,
    )
    rows = "".join(f"n{i}@example.com\n" for i in range(20_000)) + "w7@example.com\n"
    result = parse("email\n" + rows)
    started = time.monotonic()
    recipients_flag_recent(result=result, mode="email", campaign=campaign)
    assert time.monotonic() - started < 5
    assert [r.recipient for r in result.recently_rewarded] == ["w7@example.com"]


def test_left_out_lists_every_row_that_did_not_pass_with_why():
    result = parse("email,name\nbad,A\nsally@example.com,B\nsally@example.com,C\n")
    assert result.left_out(send_anyway=False) == [
        {"row": 2, "column": "email", "message": "“bad” is not a valid email address."},
        {
            "row": 4,
            "column": "email",
            "message": "sally@example.com is already in row 3; each recipient is sent once "
            "per upload.",
        },
    ]


# --- The preview and the send apply one rule -----------------------------------------------

# Valid by RFC 5322 (Django's EmailValidator passes each) and still not carriable by
# recipient_list: quoted local parts holding "<", ",", an escaped blank or a control character.
CARRIED_BY_NO_LIST = [
    '"<img/src=x>"@example.com',
    '"a,b"@example.com',
    '"a\\ b"@example.com',
    '"a\\\tb"@example.com',
    '"a\x01b"@example.com',
    '"a\x7fb"@example.com',
]


@pytest.mark.parametrize("address", CARRIED_BY_NO_LIST)
def test_it_leaves_out_a_valid_address_the_recipient_list_cannot_carry(address):
    result = parse(written(["email", "name"], [address, "Sally"], ["ok@example.com", "Ok"]))
    assert kinds(result) == [(2, "email", Kind.BAD_EMAIL)]
    assert "recipient list cannot carry" in result.problems[0].message
    assert [r.recipient for r in result.rows] == ["ok@example.com"]
    # The send refuses it with the very same words.
    with pytest.raises(RecipientRefused) as refused:
        recipient_list_build(recipients=[Recipient(address, "Sally")])
    assert refused.value.reason == result.problems[0].message


_HOSTILE = ' ,<>"\\\t\x01\x1f\x7f\x85\xa0\u2028;@.()[]:'
_hostile_text = st.text(alphabet=_HOSTILE + "ab", min_size=1, max_size=8)
hostile_addresses = st.one_of(
    _hostile_text.map(lambda s: f'"{s}"@example.com'),
    _hostile_text.map(lambda s: '"' + "".join("\\" + c for c in s) + '"@example.com'),
    _hostile_text.map(lambda s: f"a{s}b@example.com"),
)


@settings(max_examples=300, deadline=None)
@given(
    recipient=hostile_addresses | _hostile_text,
    name=st.text(alphabet=_HOSTILE + "ab", max_size=12),
    mode=st.sampled_from(["email", "link", "link-id"]),
)
def test_a_row_the_preview_passes_is_a_row_the_send_carries(recipient, name, mode):
    header = "recipient_id" if mode == "link-id" else "email"
    result = parse(written([header, "name"], [recipient, name]), mode=mode)
    for row in result.rows:
        built = recipient_list_build(
            recipients=[Recipient(row.recipient, row.name)], by_id=mode == "link-id"
        )
        assert built == (f"{row.name} <{row.recipient}>" if row.name else row.recipient)


@pytest.mark.parametrize("mode", ["email", "link", "link-id"])
def test_the_template_of_each_mode_parses_cleanly_in_that_mode(mode):
    result = parse(csv_template(mode=mode), mode=mode)
    assert result.ok and result.problems == [] and len(result.rows) == 1


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), mode=st.sampled_from(["email", "link", "link-id"]))
def test_random_bytes_give_a_clear_error_or_a_valid_parse(data, mode):
    result = recipients_parse_csv(data=data, mode=mode)
    if result.ok:
        assert result.total_rows == len(result.rows) + len(result.left_out_rows)
    else:
        assert result.error.endswith(".") and result.rows == []


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), mode=st.sampled_from(["email", "link", "link-id"]))
def test_random_text_gives_a_clear_error_or_a_valid_parse(text, mode):
    result = recipients_parse_csv(data=text.encode(), mode=mode)
    assert result.ok or (result.error and result.rows == [])


def _valid(validator, value: str) -> bool:
    from django.core.exceptions import ValidationError

    try:
        validator(value)
    except ValidationError:
        return False
    return True


@given(
    st.one_of(
        st.emails(),
        st.text(alphabet=st.sampled_from('ab.-_+@"[]:1é\\ \x01'), max_size=30),
        st.from_regex(r"\A[a-z0-9.]{0,10}@[a-z0-9.\-\[\]:]{0,20}\Z"),
    )
)
@settings(max_examples=400, deadline=None)
def test_our_email_validator_says_what_djangos_says(address):
    from django.core.validators import EmailValidator

    from rewards.services.csv_import import _email_validator

    assert _valid(_email_validator, address) == _valid(EmailValidator(), address)
