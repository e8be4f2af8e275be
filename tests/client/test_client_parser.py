"""The client's parser against hand-written answers: every call, every error, lenient forms,
and the bodies that are not the API's XML."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest
from django.conf import settings

from rewards.mokugift import (
    ERROR_DESCRIPTIONS,
    ApiError,
    CreatedReward,
    CreateResult,
    MokugiftError,
    ProtocolError,
    RewardRecord,
    Summary,
    TransportError,
    UnsentReward,
    create_body_parse,
    query_body_stream,
)
from tests.client import bodies

UTC = dt.UTC


def _query(body: str | bytes, *, chunk: int = 0) -> tuple[list[RewardRecord], Summary | None]:
    data = body.encode() if isinstance(body, str) else body
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    with query_body_stream(chunks=chunks) as stream:
        records = list(stream)
        return records, stream.summary


def _protocol_error(body: str | bytes, *, mode: str = "email", multi: bool = False) -> str:
    with pytest.raises(ProtocolError) as caught:
        create_body_parse(
            body=body.encode() if isinstance(body, str) else body, mode=mode, multi=multi
        )
    return str(caught.value)


def _query_protocol_error(body: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        _query(body)
    return caught.value


# --- Success of each call -----------------------------------------------------------------


def test_it_reads_a_reward_call_that_emails_the_reward():
    result = create_body_parse(body=bodies.REWARD.encode(), mode="email")

    assert result == CreateResult(
        transaction_id="tx-1",
        reward=CreatedReward(id="r-1", recipient="sally@chan.com", url=None),
    )


def test_it_reads_a_reward_url_call_with_its_url():
    result = create_body_parse(body=bodies.REWARD_URL.encode(), mode="link")

    assert result.reward == CreatedReward(
        id="r-2", recipient="sally@chan.com", url="http://www.mokugift.com/r/r-2"
    )
    assert result.transaction_id == "tx-2"


def test_it_reads_a_reward_url2_call_by_recipient_id():
    result = create_body_parse(body=bodies.REWARD_URL2.encode(), mode="link-id")

    assert result.reward == CreatedReward(
        id="r-3", recipient="user6789", url="http://www.mokugift.com/r/r-3"
    )


def test_it_reads_a_multi_rewards_call():
    result = create_body_parse(body=bodies.MULTI_REWARDS.encode(), mode="email", multi=True)

    assert result.status == "Success"
    assert result.transaction_id == "tx-4"
    assert [r.id for r in result.rewards] == ["r-4", "r-5"]
    assert [r.recipient for r in result.rewards] == ["sally@chan.com", "john@smith.com"]
    assert all(r.url is None for r in result.rewards)
    assert result.unsent == []


def test_it_reads_a_multi_reward_urls_call_with_the_urls():
    result = create_body_parse(body=bodies.MULTI_REWARD_URLS.encode(), mode="link", multi=True)

    assert [r.url for r in result.rewards] == [
        "http://www.mokugift.com/r/r-6",
        "http://www.mokugift.com/r/r-7",
    ]


def test_it_reads_a_part_failed_multi_call_with_what_was_made_and_what_was_not():
    result = create_body_parse(
        body=bodies.MULTI_REWARD_URLS2_PART_FAILED.encode(), mode="link-id", multi=True
    )

    assert result.status == "Part_Failed"
    assert result.rewards == [
        CreatedReward(id="r-8", recipient="user6789", url="http://www.mokugift.com/r/r-8")
    ]
    assert result.unsent == [
        UnsentReward(
            recipient="user1234",
            given="John Smith <user1234>",
            code=105,
            description="Lack of moku-coins",
        ),
        UnsentReward(
            recipient="user0000", given="user0000", code=113, description="Invalid parameters"
        ),
    ]
    assert not result.unsent[0].outcome_unknown


def test_it_reads_the_rewards_and_summary_of_a_query():
    records, summary = _query(bodies.QUERY)

    assert records == [
        RewardRecord(
            id="r-1",
            date=dt.datetime(2026, 5, 1, 9, 30, tzinfo=UTC),
            recipient_email="sally@chan.com",
            recipient_id="",
            tree_count=2,
        ),
        RewardRecord(
            id="r-3",
            date=dt.datetime(2026, 5, 2, 23, 59, 59, tzinfo=UTC),
            recipient_email="",
            recipient_id="user6789",
            tree_count=1,
        ),
    ]
    assert summary == Summary(reward_count=2, tree_count=3)


def test_it_reads_a_query_with_no_reward():
    assert _query(bodies.QUERY_EMPTY) == ([], Summary(reward_count=0, tree_count=0))


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
def test_it_reads_a_query_fed_in_chunks_of_any_size(chunk):
    assert _query(bodies.QUERY, chunk=chunk) == _query(bodies.QUERY)


def test_the_summary_is_there_only_once_the_stream_is_exhausted():
    with query_body_stream(chunks=[bodies.QUERY.encode()]) as stream:
        next(stream)
        assert stream.summary is None
        next(stream)
        with pytest.raises(StopIteration):
            next(stream)
        assert stream.summary == Summary(reward_count=2, tree_count=3)


# --- Failed: every code --------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(ERROR_DESCRIPTIONS))
def test_a_failed_single_call_is_an_api_error_with_its_code_and_description(code):
    body = bodies.failed(code, ERROR_DESCRIPTIONS[code])

    with pytest.raises(ApiError) as caught:
        create_body_parse(body=body.encode(), mode="link")

    error = caught.value
    assert (error.code, error.description) == (code, ERROR_DESCRIPTIONS[code])
    assert error.retryable is (code in (105, 110))
    assert error.no_coins is (code == 105)
    # 110 on a create call: the reward may or may not exist.
    assert error.outcome_unknown is (code == 110)
    assert ("outcome unknown" in str(error)) is (code == 110)
    assert f"error {code}" in str(error)


@pytest.mark.parametrize("code", sorted(ERROR_DESCRIPTIONS))
def test_a_failed_query_is_an_api_error_and_never_outcome_unknown(code):
    with pytest.raises(ApiError) as caught:
        _query(bodies.failed(code, ERROR_DESCRIPTIONS[code]))

    assert caught.value.code == code
    assert caught.value.outcome_unknown is False


def test_a_failed_multi_call_is_an_api_error():
    with pytest.raises(ApiError) as caught:
        create_body_parse(body=bodies.MULTI_FAILED.encode(), mode="email", multi=True)

    assert caught.value.code == 112
    assert caught.value.transaction_id == "tx-7"


def test_a_failed_create_keeps_its_transaction_id():
    body = bodies.failed(105, "Lack of moku-coins", transaction_id="tx-9")

    with pytest.raises(ApiError) as caught:
        create_body_parse(body=body.encode(), mode="email")

    assert caught.value.transaction_id == "tx-9"


def test_an_error_without_a_description_takes_the_one_of_the_document():
    body = bodies.failed(103, "")

    with pytest.raises(ApiError) as caught:
        create_body_parse(body=body.encode(), mode="email")

    assert caught.value.description == "Campaign disabled"


def test_every_error_of_the_client_says_whether_the_outcome_is_unknown_and_a_retry_helps():
    for error in (
        ApiError(101),
        TransportError("x", reached_server=False),
        ProtocolError("x"),
    ):
        assert isinstance(error, MokugiftError)
        assert isinstance(error.outcome_unknown, bool)
        assert isinstance(error.retryable, bool)


# --- Lenient where the document says so ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-01 09:30:00", dt.datetime(2026, 5, 1, 9, 30, tzinfo=UTC)),
        ("2026-05-01", dt.datetime(2026, 5, 1, tzinfo=UTC)),
        ("2026-05-01T09:30:00+09:00", dt.datetime(2026, 5, 1, 0, 30, tzinfo=UTC)),
        ("2026-05-01T09:30:00-05:00", dt.datetime(2026, 5, 1, 14, 30, tzinfo=UTC)),
        ("2026-05-01T09:30:00Z", dt.datetime(2026, 5, 1, 9, 30, tzinfo=UTC)),
        ("  2026-05-01 09:30:00\n ", dt.datetime(2026, 5, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_it_accepts_the_date_forms_of_the_document_and_gives_utc(text, expected):
    [record], _ = _query(bodies.query_with_date(text))

    assert record.date == expected
    assert record.date.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("status", ["success", "SUCCESS", " Success ", "sUcCeSs"])
def test_the_case_and_blanks_of_status_do_not_matter(status):
    body = bodies.REWARD.replace("<status>Success</status>", f"<status>{status}</status>")

    assert create_body_parse(body=body.encode(), mode="email").reward.id == "r-1"


def test_the_case_of_part_failed_does_not_matter():
    body = bodies.MULTI_REWARD_URLS2_PART_FAILED.replace("Part_Failed", "PART_FAILED")

    result = create_body_parse(body=body.encode(), mode="link-id", multi=True)

    assert result.status == "Part_Failed"


def test_blanks_around_values_and_between_elements_are_ignored():
    body = (
        "\n\n<result>\n\t<version> 1.0 </version>\n<status>\n Success\n</status>"
        "<transaction_id>  tx-1  </transaction_id><reward>  <id>\n r-1 \n</id>"
        "<recipient_email> sally@chan.com </recipient_email>  </reward>  </result>\n\n"
    )

    result = create_body_parse(body=body.encode(), mode="email")

    assert result == CreateResult(
        transaction_id="tx-1", reward=CreatedReward(id="r-1", recipient="sally@chan.com", url=None)
    )


def test_a_space_inside_a_value_split_across_chunks_is_kept():
    body = bodies.failed(105, "Lack of moku-coins").encode()
    at = body.index(b"of moku") + 2  # split right before the space

    with pytest.raises(ApiError) as caught:
        list(query_body_stream(chunks=[body[:at], body[at : at + 1], body[at + 1 :]]))

    assert caught.value.description == "Lack of moku-coins"


def test_an_element_the_document_does_not_name_is_ignored():
    body = bodies.REWARD.replace("<version>", "<server>mokugift-2</server><version>")

    assert create_body_parse(body=body.encode(), mode="email").reward.id == "r-1"


def test_a_create_answer_without_a_transaction_id_is_still_read():
    body = bodies.REWARD.replace("<transaction_id>tx-1</transaction_id>", "")

    assert create_body_parse(body=body.encode(), mode="email").transaction_id is None


# --- Strict about everything else ----------------------------------------------------------


def test_an_empty_body_is_a_protocol_error_saying_so():
    assert "the body is empty" in _protocol_error(b"")


def test_html_is_a_protocol_error_naming_the_root():
    message = _protocol_error("<html><body>Service Unavailable</body></html>")

    assert "the root element is <html>, not <result>" in message


def test_plain_text_is_a_protocol_error():
    assert "malformed XML" in _protocol_error("Internal Server Error")


def test_a_truncated_body_is_a_protocol_error_saying_it_is_truncated():
    body = bodies.REWARD_URL[: len(bodies.REWARD_URL) // 2]

    assert "truncated" in _protocol_error(body, mode="link")


def test_a_truncated_query_is_a_protocol_error_after_the_rewards_it_held():
    body = bodies.QUERY[: bodies.QUERY.index("<summary>")]
    seen = []

    stream = query_body_stream(chunks=[body.encode()])
    with pytest.raises(ProtocolError, match="truncated"), stream:
        seen.extend(stream)

    assert [r.id for r in seen] == ["r-1", "r-3"]


def test_junk_after_the_root_is_a_protocol_error():
    assert "malformed XML" in _protocol_error(bodies.REWARD + "<result/>")


def test_a_mismatched_tag_is_a_protocol_error_with_line_and_column():
    message = _protocol_error(bodies.REWARD.replace("</id>", "</idx>"))

    assert "mismatched tag" in message
    assert "line" in message


@pytest.mark.parametrize(
    ("remove", "problem"),
    [
        ("<version>1.0</version>", "missing <version> in <result>"),
        ("<status>Success</status>", "missing <status> in <result>"),
        ("<id>r-2</id>", "missing <id> in <reward>"),
        ("<url>http://www.mokugift.com/r/r-2</url>", "missing <url> in <reward>"),
        ("<recipient_email>sally@chan.com</recipient_email>", "missing <recipient_email>"),
    ],
)
def test_a_missing_element_is_a_protocol_error_naming_it(remove, problem):
    assert problem in _protocol_error(bodies.REWARD_URL.replace(remove, ""), mode="link")


def test_a_single_create_without_its_reward_is_a_protocol_error():
    body = bodies.REWARD[: bodies.REWARD.index("<reward>")] + "</result>"

    assert "missing <reward> in <result>" in _protocol_error(body)


def test_an_empty_id_is_a_protocol_error():
    body = bodies.REWARD.replace("<id>r-1</id>", "<id>  </id>")

    assert "empty <id> in <reward>" in _protocol_error(body)


def test_two_statuses_are_a_protocol_error():
    body = bodies.REWARD.replace("<status>Success</status>", "<status>Success</status>" * 2)

    assert "more than one <status>" in _protocol_error(body)


@pytest.mark.parametrize("status", ["OK", "", "Succeeded", "Part Failed"])
def test_an_unknown_status_is_a_protocol_error(status):
    body = bodies.REWARD.replace("<status>Success</status>", f"<status>{status}</status>")

    assert "unknown <status>" in _protocol_error(body)


def test_part_failed_on_a_single_call_is_a_protocol_error():
    body = bodies.REWARD.replace("Success", "Part_Failed")

    assert "Part_Failed is for multi calls only" in _protocol_error(body)


def test_success_with_unsent_rewards_is_a_protocol_error():
    body = bodies.MULTI_REWARD_URLS2_PART_FAILED.replace("Part_Failed", "Success")

    assert "status Success with 2 unsent rewards" in _protocol_error(
        body, mode="link-id", multi=True
    )


def test_failed_without_an_error_is_a_protocol_error():
    body = bodies.failed(101, "x").replace(
        "<error><code>101</code><description>x</description></error>", ""
    )

    assert "missing <error> in <result>" in _protocol_error(body)


@pytest.mark.parametrize("code", ["abc", "", "1.5", "-3", "\u0661\u0660\u0661"])
def test_an_error_code_that_is_not_a_whole_number_is_a_protocol_error(code):
    body = bodies.failed(101, "x").replace("<code>101</code>", f"<code>{code}</code>")

    message = _protocol_error(body)

    assert "<code> in <error>" in message


@pytest.mark.parametrize("digits", [11, 5000])
def test_an_error_code_too_large_for_an_integer_is_a_protocol_error(digits):
    # 5,000 digits: more than int() reads (4,300), which raised a ValueError from the parser.
    body = bodies.failed(110, "Internal error").replace(
        "<code>110</code>", f"<code>{'7' * digits}</code>"
    )

    assert "<code> in <error> is too large" in _protocol_error(body)


@pytest.mark.parametrize("tag", ["reward_count", "tree_count"])
def test_a_summary_count_too_large_for_the_monthly_summaries_is_a_protocol_error(tag):
    count = {
        "reward_count": "<reward_count>2</reward_count>",
        "tree_count": "<tree_count>3</tree_count>",
    }[tag]
    body = bodies.QUERY.replace(count, f"<{tag}>0002147483648</{tag}>")
    assert body != bodies.QUERY

    assert f"<{tag}> in <summary> is too large" in str(_query_protocol_error(body))


@pytest.mark.parametrize("date", ["yesterday", "2026-13-01", "01/05/2026", "2026-05-01 25:00"])
def test_a_date_that_is_no_date_is_a_protocol_error(date):
    error = _query_protocol_error(bodies.query_with_date(date))

    assert "<date> is not a date" in str(error)
    assert error.outcome_unknown is False  # a query makes nothing


def test_a_query_reward_with_no_recipient_is_a_protocol_error():
    body = bodies.query_with_date("2026-05-01").replace(
        "<recipient_email>user1@example.com</recipient_email>", ""
    )

    assert "neither <recipient_email> nor <recipient_id>" in str(_query_protocol_error(body))


def test_a_query_without_its_summary_is_a_protocol_error():
    body = bodies.QUERY[: bodies.QUERY.index("<summary>")] + "</result>"

    assert "missing <summary> in <result>" in str(_query_protocol_error(body))


def test_rewards_before_the_status_are_a_protocol_error():
    body = bodies.QUERY.replace("<status>Success</status>", "").replace(
        "</rewards>", "</rewards><status>Success</status>"
    )

    assert "<rewards> comes before <status>" in str(_query_protocol_error(body))


def test_something_else_than_a_reward_inside_rewards_is_a_protocol_error():
    body = bodies.QUERY.replace("<rewards>", "<rewards><item/>")

    assert "<item> inside <rewards>" in str(_query_protocol_error(body))


@pytest.mark.parametrize(
    "where", ["<rewards><item/>", "</reward>\n    <item/>\n    <reward>", "<item/></rewards>"]
)
def test_something_else_than_a_reward_anywhere_in_rewards_is_a_protocol_error(where):
    # Before the first reward, between two, after the last: the parser hears only of rewards.
    anchor = {"<rewards><item/>": "<rewards>", "<item/></rewards>": "</rewards>"}.get(
        where, "</reward>\n    <reward>"
    )
    body = bodies.QUERY.replace(anchor, where, 1)
    assert body != bodies.QUERY

    assert "<item> inside <rewards>" in str(_query_protocol_error(body))


def test_a_root_in_a_namespace_that_is_not_result_is_named():
    message = _protocol_error('<x:html xmlns:x="urn:x"><x:body/></x:html>')

    assert "the root element is <html>, not <result>" in message


@pytest.mark.parametrize("field", ["<id>r-1</id>", "<tree_count>2</tree_count>"])
def test_a_field_of_more_than_64_kib_in_a_query_is_a_protocol_error(field):
    # Leading zeros keep the number, but not a value without end.
    long = field.replace(">", ">" + "0" * (64 * 1024), 1)
    body = bodies.QUERY.replace(field, long, 1)

    tag = field[: field.index(">") + 1]
    assert f"{tag} holds more than 65536 characters" in str(_query_protocol_error(body))


def test_elements_nested_very_deep_in_a_query_reward_are_a_protocol_error():
    deep = "<a>" * 20 + "</a>" * 20
    body = bodies.QUERY.replace("<id>r-3</id>", "<id>r-3</id>" + deep, 1)

    assert "nested too deep" in str(_query_protocol_error(body))


def test_a_prolog_that_is_not_xml_is_a_protocol_error():
    body = bodies.REWARD.replace(bodies.DECLARATION, '<?xml version="1.0" standalone="maybe"?>')
    assert body != bodies.REWARD

    assert "malformed XML" in _protocol_error(body)


def test_a_negative_tree_count_is_a_protocol_error():
    body = bodies.QUERY.replace("<tree_count>2</tree_count>", "<tree_count>-2</tree_count>")

    assert "<tree_count> in <reward> is not a whole number" in str(_query_protocol_error(body))


def test_a_tree_count_too_large_for_the_mirror_is_a_protocol_error_not_a_database_error():
    body = bodies.QUERY.replace(
        "<tree_count>2</tree_count>", "<tree_count>99999999999</tree_count>"
    )

    assert "<tree_count> in <reward> is too large" in str(_query_protocol_error(body))


@pytest.mark.parametrize(
    "unusual",
    [
        # Another order, blanks, a "T": still the one-pass path.
        """<date> 2026-05-01T09:30:00 </date>
      <recipient_email> sally@chan.com </recipient_email>
      <id>r-1</id>""",
        # The lenient forms, read by the careful path: an offset, a comment in a value.
        """<id>r-<!-- a comment -->1</id>
      <recipient_email>sally@chan.com</recipient_email>
      <date>2026-05-01T11:30:00+02:00</date>""",
    ],
)
def test_a_reward_out_of_the_usual_shape_reads_as_the_usual_one(unusual):
    usual = bodies.QUERY
    body = usual.replace(
        """<id>r-1</id>
      <recipient_email>sally@chan.com</recipient_email>
      <date>2026-05-01 09:30:00</date>""",
        unusual,
    )
    assert body != usual

    assert _query(body) == _query(usual)


def test_a_tree_count_with_leading_zeros_is_its_number():
    body = bodies.QUERY.replace("<tree_count>2</tree_count>", "<tree_count>0000000002</tree_count>")

    assert _query(body)[0][0].tree_count == 2


def test_an_answer_in_a_default_namespace_reads_as_a_plain_one():
    # The document uses no namespace; lxml would name every element "{urn:x}...".
    namespaced = bodies.QUERY.replace("<result>", '<result xmlns="urn:mokugift">')

    assert _query(namespaced) == _query(bodies.QUERY)
    assert create_body_parse(
        body=bodies.REWARD_URL.replace("<result>", '<result xmlns="urn:x">').encode(), mode="link"
    ) == create_body_parse(body=bodies.REWARD_URL.encode(), mode="link")


@pytest.mark.parametrize("field", ["id", "date", "tree_count", "recipient_email"])
def test_a_reward_field_given_twice_once_in_a_namespace_is_refused(field):
    # A namespaced element reads as a plain one, so this is the field twice; the usual shape
    # all around it must not let it through.
    body = bodies.QUERY.replace(
        "<tree_count>2</tree_count>",
        f'<tree_count>2</tree_count><m:{field} xmlns:m="urn:x">9</m:{field}>',
    )

    assert f"more than one <{field}> in <reward>" in str(_query_protocol_error(body))


def test_a_protocol_error_of_a_create_call_is_outcome_unknown():
    with pytest.raises(ProtocolError) as caught:
        create_body_parse(body=b"<html/>", mode="email")

    assert caught.value.outcome_unknown is True
    assert str(caught.value).endswith("(outcome unknown)")
    assert caught.value.reached_server is True
    assert isinstance(caught.value, TransportError)


# --- Untrusted XML ------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE result [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<result><version>1.0</version><status>Failed</status>
<error><code>110</code><description>&lol9;</description></error></result>
"""


def test_a_billion_laughs_body_is_a_protocol_error_at_once():
    started = time.perf_counter()

    message = _protocol_error(BILLION_LAUGHS)

    assert "DOCTYPE" in message
    assert time.perf_counter() - started < 1


def test_an_external_entity_is_a_protocol_error_and_no_file_is_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the-content-of-a-local-file")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE result [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<result><version>1.0</version><status>Failed</status>"
        "<error><code>110</code><description>&x;</description></error></result>"
    )

    with pytest.raises(ProtocolError) as caught:
        _query(body)

    assert "the-content-of-a-local-file" not in str(caught.value)
    assert "DOCTYPE" in str(caught.value)


def test_a_doctype_without_entities_is_refused_too():
    assert "DOCTYPE" in _protocol_error(
        '<!DOCTYPE result SYSTEM "http://example.invalid/x.dtd">'
        + bodies.REWARD.replace(bodies.DECLARATION, "")
    )


def test_an_undeclared_entity_is_a_protocol_error():
    body = bodies.REWARD.replace("r-1", "&secret;")

    assert "undefined entity" in _protocol_error(body)


def test_the_five_predefined_entities_and_character_references_are_read():
    body = bodies.REWARD.replace("<id>r-1</id>", "<id>a&amp;b&lt;c&gt;&quot;&apos;&#x41;</id>")

    assert create_body_parse(body=body.encode(), mode="email").reward.id == "a&b<c>\"'A"


def test_the_body_is_read_as_utf8_whatever_its_declaration_says():
    body = bodies.REWARD.replace('encoding="UTF-8"', 'encoding="TF-8"').replace("r-1", "r-\u6728")

    assert create_body_parse(body=body.encode(), mode="email").reward.id == "r-\u6728"


def test_bytes_that_are_not_utf8_are_a_protocol_error():
    body = bodies.REWARD.encode().replace(b"r-1", b"r-\xe9")

    assert "malformed XML" in _protocol_error(body)


def test_bytes_that_are_not_utf8_are_named_at_their_place_across_chunks():
    head = b"<result><version>1.0</version><status>Success</status><rewards><reward><id>ab"
    chunks = [head + b"\xe6\x97", b"A</id></reward></rewards></result>"]

    stream = query_body_stream(chunks=chunks)
    with pytest.raises(ProtocolError, match=f"not UTF-8 at byte {len(head)}\\)"), stream:
        list(stream)


def test_a_value_of_more_than_64_kib_is_a_protocol_error():
    body = bodies.REWARD.replace("r-1", "x" * (64 * 1024 + 1))

    assert "<id> holds more than 65536 characters" in _protocol_error(body)


def test_text_that_never_ends_is_refused_before_the_whole_body_is_read():
    fed = []

    def chunks():
        yield b"<result><version>"
        for _ in range(1000):  # 64 MB of digits, if all of it were read
            fed.append(1)
            yield b"1" * 65536

    stream = query_body_stream(chunks=chunks())
    with pytest.raises(ProtocolError, match="<version> holds more than 65536 characters"), stream:
        list(stream)
    assert len(fed) <= 3


def test_text_after_a_reward_that_spans_chunks_is_read_safely():
    # libxml2 may still be adding to the text after a reward (its tail) when the reward ends:
    # dropping the reward then freed that text under the parser, and the process crashed
    # (found by a differential fuzzer). In a child process, so that a crash is a failure here.
    script = """
import sys
from rewards.mokugift import query_body_stream
from tests.client import bodies
body = bodies.QUERY.replace("</reward>", "</reward>" + "\u6728" * 22000, 1).encode()
chunks = [body[i : i + 16384] for i in range(0, len(body), 16384)]
for _ in range(20):
    stream = query_body_stream(chunks=chunks)
    ids = [r.id for r in stream]
print(ids, stream.summary.reward_count)
"""
    child = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "['r-1', 'r-3'] 2"


def test_a_thousand_unsent_rewards_are_read_in_the_clients_chunks():
    # 240 KB of unsent rewards: no field of theirs is an event of the parser, their ends are.
    unsent = "".join(
        f"""
    <unsent_reward>
      <recipient>Firstname{i} Lastname Of A Much Longer Family &lt;user{i:06}&gt;</recipient>
      <error><code>105</code><description>Lack of moku-coins</description></error>
    </unsent_reward>"""
        for i in range(999)
    )
    body = bodies.MULTI_REWARD_URLS2_PART_FAILED
    start = body.index("<unsent_rewards>") + len("<unsent_rewards>")
    data = (body[:start] + unsent + body[body.index("</unsent_rewards>") :]).encode()
    chunks = [data[i : i + 64 * 1024] for i in range(0, len(data), 64 * 1024)]
    assert len(chunks) >= 4

    result = create_body_parse(body=chunks, mode="link-id", multi=True)

    assert [u.recipient for u in result.unsent] == [f"user{i:06}" for i in range(999)]


def test_a_value_of_many_characters_of_three_bytes_each_is_read():
    # 60,000 characters (180 KB of UTF-8) is under the 65,536-character limit.
    long_id = "\u6728" * 60_000
    data = bodies.QUERY.replace("<id>r-1</id>", f"<id>{long_id}</id>").encode()
    chunks = [data[i : i + 16 * 1024] for i in range(0, len(data), 16 * 1024)]

    with query_body_stream(chunks=chunks) as stream:
        assert [r.id for r in stream] == [long_id, "r-3"]


def test_the_text_of_a_reward_itself_is_bounded_too():
    body = bodies.QUERY.replace("<reward>", "<reward>" + "x" * (64 * 1024 + 1), 1)

    assert "<reward> holds more than 65536 characters" in str(_query_protocol_error(body))


def test_a_message_quotes_a_bounded_piece_of_the_body():
    body = bodies.REWARD.replace("r-1", "&" + "x" * 20_000 + ";")

    message = _protocol_error(body)

    assert "undefined entity" in message
    assert len(message) < 600


def test_an_error_after_a_complete_answer_is_not_called_a_truncation():
    # libxml2 reports a namespace that is no URI only at the end, when nothing is missing.
    message = _protocol_error(bodies.REWARD.replace("<result>", '<result xmlns="not a uri">'))

    assert "malformed XML" in message
    assert "truncated" not in message


def test_elements_nested_very_deep_are_a_protocol_error():
    body = bodies.REWARD.replace("<id>r-1</id>", "<a>" * 50 + "</a>" * 50 + "<id>r-1</id>")

    assert "nested too deep" in _protocol_error(body)


def test_a_multi_call_failed_with_110_is_outcome_unknown():
    body = bodies.MULTI_FAILED.replace(
        "<code>112</code><description>Invalid email", "<code>110</code><description>Internal error"
    )

    with pytest.raises(ApiError) as caught:
        create_body_parse(body=body.encode(), mode="email", multi=True)

    assert (caught.value.code, caught.value.outcome_unknown) == (110, True)


def test_an_unsent_reward_with_110_says_its_outcome_is_unknown():
    body = bodies.MULTI_REWARD_URLS2_PART_FAILED.replace("<code>105</code>", "<code>110</code>")

    result = create_body_parse(body=body.encode(), mode="link-id", multi=True)

    assert [u.outcome_unknown for u in result.unsent] == [True, False]


def test_an_unsent_item_of_blanks_does_not_make_the_parser_backtrack():
    given = "<" + " " * 60_000
    body = bodies.MULTI_REWARD_URLS2_PART_FAILED.replace("user0000", given.replace("<", "&lt;"))
    started = time.perf_counter()

    result = create_body_parse(body=body.encode(), mode="link-id", multi=True)

    assert time.perf_counter() - started < 1
    assert result.unsent[1].recipient == "<"
