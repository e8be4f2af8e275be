"""A property of the parser: whatever the bytes, it returns results, raises the API's own error
(a well-formed Failed answer), or raises ProtocolError. Never anything else, and never a hang."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards.mokugift import (
    ApiError,
    CreateResult,
    MultiResult,
    ProtocolError,
    RewardRecord,
    Summary,
    create_body_parse,
    query_body_stream,
)
from tests.client import bodies

SEEDS = [text.encode() for text in bodies.ALL_BODIES.values()] + [
    bodies.MULTI_FAILED.encode(),
    bodies.failed(110, "Internal error").encode(),
    bodies.query_with_date("2026-05-01T09:30:00+09:00").encode(),
]

# Pieces that make mutations interesting to an XML parser and to ours.
TOKENS = [
    b"<",
    b">",
    b"</",
    b"/>",
    b"&",
    b"&amp;",
    b"&lol;",
    b"&#0;",
    b"&#x110000;",
    b"<!DOCTYPE result [<!ENTITY a 'b'>]>",
    b'<!ENTITY x SYSTEM "file:///etc/passwd">',
    b"<![CDATA[",
    b"]]>",
    b"<?xml version='1.0'?>",
    b"<reward>",
    b"</reward>",
    b"<rewards>",
    b"</rewards>",
    b"<status>Failed</status>",
    b"<status>Part_Failed</status>",
    b"<error><code>110</code></error>",
    b"<code>99999999999999999999</code>",
    b"<date>9999-12-31T23:59:59-23:59</date>",
    b"<date>0001-01-01T00:00:00+23:59</date>",
    b"<tree_count>-1</tree_count>",
    b"<summary>",
    b"\xff\xfe",
    b"\x00",
    "\u00e9\u6728".encode(),
    b" ",
    b"\n",
]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["delete", "insert", "token", "truncate", "repeat", "flip"]))
        if kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=20))
        elif kind == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == "truncate":
            del data[at:]
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 80))]
        elif data and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


bodies_strategy = st.one_of(mutated(), st.binary(max_size=300), st.sampled_from(SEEDS))


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=bodies_strategy,
    mode=st.sampled_from(["email", "link", "link-id"]),
    multi=st.booleans(),
)
def test_a_create_answer_gives_a_result_an_api_error_or_a_protocol_error(data, mode, multi):
    try:
        result = create_body_parse(body=data, mode=mode, multi=multi)
    except (ApiError, ProtocolError) as error:
        assert str(error)
        return
    assert isinstance(result, MultiResult if multi else CreateResult)
    rewards = result.rewards if multi else [result.reward]
    for reward in rewards:
        assert reward.id and reward.recipient
        assert (reward.url is None) or reward.url


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=bodies_strategy, cuts=st.lists(st.integers(0, 2000), max_size=5))
def test_a_query_answer_gives_records_an_api_error_or_a_protocol_error(data, cuts):
    records = []
    try:
        with query_body_stream(chunks=_chunked(data, cuts)) as stream:
            records.extend(stream)
            summary = stream.summary
    except (ApiError, ProtocolError) as error:
        assert str(error)
        return
    assert isinstance(summary, Summary)
    for record in records:
        assert isinstance(record, RewardRecord)
        assert record.date.utcoffset() == dt.timedelta(0)
        assert record.tree_count >= 0
        assert record.recipient_email or record.recipient_id
