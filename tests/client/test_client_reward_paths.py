"""The parser reads a query answer's reward by a fast path when it has the document's shape and
by a checked path otherwise; the fast path may only ever say what the checked one would. Each
reward is read by both, on the element exactly as the parser holds it, and both must give the
same RewardRecord or both refuse it: generated rewards (the document's, then up to two faults
or oddities), and the rewards at the bounds of the fast path's own checks (BOUNDS), which a
generator would meet only now and then."""

from __future__ import annotations

import datetime as dt
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rewards.mokugift import ProtocolError, RewardRecord
from rewards.mokugift.parser import _MAX_TEXT, _Call, _ResultParser

FIELDS = ("id", "date", "tree_count", "recipient_email", "recipient_id")


class _BothPaths(_ResultParser):
    """A query answer's parser that reads each reward by both paths and keeps both outcomes:
    (fast, checked, whether the fast path handed the reward to the checked one)."""

    def __init__(self):
        super().__init__(_Call(kind="query", label="all_rewards"))
        self.outcomes: list[tuple[object, object, bool]] = []
        self._handed_over = 0

    def _query_reward_checked(self, node):
        self._handed_over += 1
        return super()._query_reward_checked(node)

    def _query_reward(self, node):
        before = self._handed_over
        fast = _outcome(super()._query_reward, node)
        handed_over = self._handed_over > before
        checked = _outcome(super()._query_reward_checked, node)
        self.outcomes.append((fast, checked, handed_over))
        if isinstance(checked, ProtocolError):
            raise checked
        return checked


def _outcome(read, node):
    try:
        return read(node)
    except ProtocolError as error:
        return error


def _answer(rewards: list[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<result><version>1.0</version>'
        f"<status>Success</status><rewards>{''.join(rewards)}</rewards><summary>"
        "<reward_count>1</reward_count><tree_count>1</tree_count></summary></result>"
    ).encode()


def _read_both(body: bytes) -> _BothPaths:
    parser = _BothPaths()
    try:
        parser.feed(body)
        parser.close()
    except ProtocolError:
        pass  # a refused reward ends the answer; its outcomes are kept
    return parser


def _agree(fast: object, checked: object) -> None:
    if isinstance(checked, ProtocolError):
        assert isinstance(fast, ProtocolError), f"the fast path took what is refused: {fast}"
        return
    assert isinstance(checked, RewardRecord)
    assert isinstance(fast, RewardRecord), f"the fast path refused {checked}: {fast}"
    assert fast == checked
    assert fast.date.utcoffset() == checked.date.utcoffset() == dt.timedelta(0)
    assert [type(value) for value in fast] == [type(value) for value in checked]


# -- generated rewards

blanks = st.text(alphabet=" \t\r\n", max_size=3)
# Text XML can carry (no control characters but blanks, no surrogates or non-characters).
free_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn"))
    | st.sampled_from("\t\n"),
    max_size=25,
)
days = st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))
seconds = st.times().map(lambda time: time.replace(microsecond=0))


@st.composite
def usual_dates(draw) -> str:
    day, time = draw(days), draw(seconds)
    return f"{day}{draw(st.sampled_from(' T'))}{time}"


@st.composite
def odd_dates(draw) -> str:
    """Dates the checked path reads (an offset, no time, a week date...) or refuses; several of
    nineteen characters with a blank or a T in the middle, as the fast path's own are."""
    day, time, precise = draw(days), draw(seconds), draw(st.times())
    offset = draw(st.sampled_from(["+00:00", "+02:00", "-05:30", "Z", "+0100", "+23:59", "-23:59"]))
    week = day.isocalendar()
    return draw(
        st.sampled_from(
            [
                f"{day}",
                f"{day}T{time}{offset}",
                f"{day} {time:%H:%M}",
                f"{day}T{time:%H:%M}+01",
                f"{day}T{time:%H}+01:00",
                f"{day} {precise}",
                f"{day}T{precise.isoformat(timespec='milliseconds')}{offset}",
                f"{day:%Y%m%d}T{time:%H%M%S}",
                f"{week.year:04}-W{week.week:02}-{week.weekday}T{time}",
                f"{day} {time}"[:18],
                f"{day} {time}".replace("-", "/"),
                f"{day}_{time}",
                f"{day.year:04}-13-01 {time}",
                f"{day.year:04}-02-30 {time}",
                f"{day} 24:00:00",
                f"{day} {time:%H:%M}:60",
                f"{day}\u3000{time}",
                "",
            ]
        )
    )


@st.composite
def mangled_dates(draw) -> str:
    """A date of the document's form with a few characters changed, added or taken out: what
    Python's ISO reader takes or refuses near the fast path's own nineteen characters."""
    text = list(f"{draw(days)}{draw(st.sampled_from(' T'))}{draw(seconds)}")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(list("0123456789:+-.,TZW _") + ["+00:00", "Z", ".5"]))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        if kind == "insert" or at == len(text):
            text[at:at] = [piece]
        elif kind == "replace":
            text[at] = piece
        else:
            del text[at]
    return "".join(text)


usual_tree_counts = st.builds(
    lambda zeros, n: "0" * zeros + str(n),
    st.sampled_from([0, 0, 0, 1, 5]),
    st.integers(0, 10**9 - 1),
)
odd_tree_counts = st.one_of(
    # Nine digits are the most a tree count may have, leading zeros aside; and a digit is
    # not always an ASCII one.
    st.sampled_from(
        ["999999999", "1000000000", "000999999999", "0001000000000", "\u0663", "\u00b2"]
    ),
    st.integers(10, 13).flatmap(lambda n: st.integers(10 ** (n - 1), 10**n - 1)).map(str),
    st.sampled_from(["", "-1", "+1", "1.0", "1_000", "1e3", "0x10", "1 2"]),
    free_text,
)
usual_identifiers = st.from_regex(r"[a-z]{1,3}-[0-9]{1,6}|[A-Za-z0-9]{1,20}", fullmatch=True)
odd_identifiers = st.one_of(st.sampled_from(["", "r 1", "<r-1>", "r&amp;1", "\u6728-1"]), free_text)
usual_addresses = st.one_of(st.emails(), usual_identifiers)
odd_addresses = st.one_of(st.sampled_from(["", "Sally Chan <sally@chan.com>"]), free_text)

VALUES = {
    "id": (usual_identifiers, odd_identifiers),
    "date": (usual_dates(), st.one_of(odd_dates(), mangled_dates())),
    "tree_count": (usual_tree_counts, odd_tree_counts),
    "recipient_email": (usual_addresses, odd_addresses),
    "recipient_id": (usual_identifiers, odd_identifiers),
}
# Ways to write a field's text that give the same text.
SAME_TEXT = ["plain"] * 6 + ["cdata", "character references", "comment", "long"]
# Elements the document does not name in a reward, and text of a reward's own.
EXTRAS = [
    "<note>a field of tomorrow</note>",
    "<campaign_id>c-1</campaign_id>",
    "<recipient_name>Sally Chan</recipient_name>",
    "<extra><deeper><deepest/></deeper></extra>",
    "<a>" * 13 + "</a>" * 13,  # as deep as an answer may go, under a reward
    "<empty/>",
]
LEADS = ["", "\n    ", "stray text"]
# What can be wrong with a reward (or odd in it, and still right).
FAULTS = [
    *["an odd value"] * 4,
    "a field twice",
    "a field twice, once in a namespace",
    "a field left out",
    "a field in a namespace",
    "an empty field",
    "a field holding an element",
    "a field too long",
    "no recipient",
    "too deep",
    "too long a text of its own",
]


def _field(tag: str, text: str, kind: str) -> str:
    """One child of a reward, `<tag>text</tag>` or another way to write it."""
    if kind == "cdata" and "]]>" not in text:
        return f"<{tag}><![CDATA[{text}]]></{tag}>"
    if kind == "character references":
        return f"<{tag}>{''.join(f'&#{ord(c)};' for c in text)}</{tag}>"
    if kind == "comment":
        return f"<{tag}><!-- a comment -->{escape(text)}<?pi x?></{tag}>"
    if kind == "long":  # as long as a value may be, with the blanks around it
        return f"<{tag}>{escape(text)}{' ' * (_MAX_TEXT - len(text))}</{tag}>"
    if kind == "too long":
        return f"<{tag}>{escape(text)}{' ' * (_MAX_TEXT + 1 - len(text))}</{tag}>"
    if kind == "empty":
        return f"<{tag}/>"
    if kind == "namespaced":
        return f'<m:{tag} xmlns:m="urn:mokugift">{escape(text)}</m:{tag}>'
    if kind == "nested":
        return f"<{tag}><b>{escape(text)}</b></{tag}>"
    return f"<{tag}>{escape(text)}</{tag}>"


@st.composite
def texts(draw, tag: str, *, odd: bool = False) -> str:
    usual_values, odd_values = VALUES[tag]
    return draw(blanks) + draw(odd_values if odd else usual_values) + draw(blanks)


@st.composite
def rewards(draw) -> str:
    """A reward of a query answer: the document's fields, each once, in any order, among
    blanks and elements the document does not name, each text written in any of the ways
    that give the same text; then up to two FAULTS."""
    recipients = draw(
        st.sampled_from(
            [["recipient_email"], ["recipient_id"], ["recipient_email", "recipient_id"]]
        )
    )
    fields = [
        [tag, draw(texts(tag)), draw(st.sampled_from(SAME_TEXT))]
        for tag in ["id", "date", "tree_count", *recipients]
    ]
    extras = draw(st.lists(st.sampled_from(EXTRAS), max_size=2))
    lead = draw(st.sampled_from(LEADS))
    for fault in draw(st.lists(st.sampled_from(FAULTS), max_size=2)):
        if fault == "no recipient":
            fields = [field for field in fields if not field[0].startswith("recipient_")]
        elif fault == "too deep":
            extras.append("<a>" * 14 + "</a>" * 14)
        elif fault == "too long a text of its own":
            lead = " " * (_MAX_TEXT + 1)
        elif fields:
            at = draw(st.integers(0, len(fields) - 1))
            tag, text, _ = field = fields[at]
            if fault == "an odd value":
                field[1] = draw(texts(tag, odd=True))
            elif fault == "a field twice":
                fields.append([tag, draw(texts(tag)), "plain"])
            elif fault == "a field twice, once in a namespace":
                fields.append([tag, text, "namespaced"])
            elif fault == "a field left out":
                del fields[at]
            else:
                field[2] = {
                    "a field in a namespace": "namespaced",
                    "an empty field": "empty",
                    "a field holding an element": "nested",
                    "a field too long": "too long",
                }[fault]
    children = draw(st.permutations([_field(*field) for field in fields] + extras))
    inside = "".join(draw(blanks) + child for child in children) + draw(blanks)
    return f"<reward>{lead}{inside}</reward>"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(rewards(), min_size=1, max_size=4))
def test_the_fast_and_the_checked_path_read_every_reward_alike(batch):
    for reward in batch:  # each in an answer of its own: a refused reward ends an answer
        [(fast, checked, handed_over)] = _read_both(_answer([reward])).outcomes
        _agree(fast, checked)
        if isinstance(checked, ProtocolError):
            event("refused")
        else:
            event("checked path" if handed_over else "fast path")


def _usual(**fields: str) -> str:
    """The document's reward, some of its fields given instead (or in addition, for "extra")."""
    values = {
        "id": "<id>r-1</id>",
        "date": "<date>2026-05-01 09:30:00</date>",
        "recipient_email": "<recipient_email>sally@chan.com</recipient_email>",
        "tree_count": "<tree_count>2</tree_count>",
        "extra": "",
    }
    values.update(fields)
    return f"<reward>{''.join(values.values())}</reward>"


# Where the fast path's own checks stand, each one a reward it must read as the checked one.
BOUNDS = {
    "nine digits": _usual(tree_count="<tree_count>999999999</tree_count>"),
    "ten digits": _usual(tree_count="<tree_count>1000000000</tree_count>"),
    "nine digits after zeros": _usual(tree_count="<tree_count>000999999999</tree_count>"),
    "an Arabic-Indic digit": _usual(tree_count="<tree_count>\u0663</tree_count>"),
    "a superscript digit": _usual(tree_count="<tree_count>\u00b2</tree_count>"),
    "a sign": _usual(tree_count="<tree_count>+2</tree_count>"),
    "blanks around every value": _usual(
        id="<id>\n r-1 \t</id>", date="<date> 2026-05-01T09:30:00\n</date>"
    ),
    "an ideographic space in the date": _usual(date="<date>2026-05-01\u300009:30:00</date>"),
    "a week date": _usual(date="<date>2026-W18-5T09:30:00</date>"),
    "an hour and an offset": _usual(date="<date>2026-05-01T09+01:00</date>"),
    "minutes and a short offset": _usual(date="<date>2026-05-01T09:30+01</date>"),
    "no recipient": _usual(recipient_email=""),
    "an empty recipient": _usual(recipient_email="<recipient_email> </recipient_email>"),
    "an empty id": _usual(id="<id/>"),
    "a field twice": _usual(extra="<tree_count>2</tree_count>"),
    "a field twice, once in a namespace": _usual(
        extra='<m:tree_count xmlns:m="urn:x">2</m:tree_count>'
    ),
    "a field in a namespace": _usual(id='<m:id xmlns:m="urn:x">r-1</m:id>'),
    "a field holding an element": _usual(id="<id>r-1<b/></id>"),
    "the longest text": _usual(extra=f"<note>{'x' * _MAX_TEXT}</note>"),
    "too long a text": _usual(extra=f"<note>{'x' * (_MAX_TEXT + 1)}</note>"),
    "too long an id": _usual(id=f"<id>r-1{' ' * _MAX_TEXT}</id>"),
    "too deep": _usual(extra="<a>" * 14 + "</a>" * 14),
}


@pytest.mark.parametrize("reward", BOUNDS.values(), ids=BOUNDS.keys())
def test_the_fast_and_the_checked_path_agree_at_the_fast_paths_bounds(reward):
    parser = _read_both(_answer([reward]))

    [(fast, checked, _)] = parser.outcomes
    _agree(fast, checked)


def test_the_harness_tells_a_reward_read_by_the_fast_path_alone_from_one_handed_on():
    # The property above is only worth something if the fast path answers by itself for some
    # rewards, and the harness can tell: the document's reward, then one the fast path hands
    # on (a date with an offset), then one both refuse.
    parser = _read_both(
        _answer(
            [
                "<reward><id>r-1</id><date>2026-05-01 09:30:00</date>"
                "<recipient_email>sally@chan.com</recipient_email><tree_count>1</tree_count>"
                "</reward>",
                "<reward><id>r-2</id><date>2026-05-01T09:30:00+09:00</date>"
                "<recipient_id>user6789</recipient_id><tree_count>2</tree_count></reward>",
                "<reward><id>r-3</id><date>2026-05-01 09:30:00</date>"
                "<tree_count>3</tree_count></reward>",
            ]
        )
    )
    utc = dt.UTC
    assert [(fast, handed_over) for fast, _, handed_over in parser.outcomes[:2]] == [
        (
            RewardRecord(
                "r-1", dt.datetime(2026, 5, 1, 9, 30, tzinfo=utc), "sally@chan.com", "", 1
            ),
            False,
        ),
        (RewardRecord("r-2", dt.datetime(2026, 5, 1, 0, 30, tzinfo=utc), "", "user6789", 2), True),
    ]
    fast, checked, _ = parser.outcomes[2]
    assert isinstance(fast, ProtocolError) and isinstance(checked, ProtocolError)
    for fast, checked, _ in parser.outcomes:
        _agree(fast, checked)
