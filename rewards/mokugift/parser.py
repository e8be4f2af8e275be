"""The parser of the API's answers: bytes in, fed as they arrive, and out a create call's
result, a query call's rewards one at a time and its summary, or the error the answer is
(ApiError for status Failed, ProtocolError for a body that is not the API's XML). No network:
the HTTP module feeds it; create_body_parse parses a body held in hand.

It is lenient where shared/mokugift-api.md says so (dates, blanks, the case of `status`),
strict about everything else, and streams: a query answer of a million rewards is read in
constant memory. Bodies are parsed by lxml (libxml2), read as UTF-8 whatever they declare.
Each chunk goes first to expat, which reads the prolog up to the root element and refuses any
DOCTYPE (_prolog_guard): a DTD, and so any entity declaration or external entity, is a
ProtocolError, and the chunk in which expat met it never reaches libxml2, which is also told
to load no DTD and to touch no network. (No defusedxml: it defuses the standard library's
parsers, and its lxml module is deprecated.)
"""

from __future__ import annotations

import codecs
import datetime as dt
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, NoReturn, overload
from urllib.parse import urlsplit
from xml.parsers import expat

from lxml import etree
from lxml.etree import _Element as Element

from rewards.mokugift.errors import ERROR_DESCRIPTIONS, ApiError, ProtocolError
from rewards.mokugift.recipient_list import _address_of
from rewards.mokugift.results import (
    CreatedReward,
    CreateResult,
    MultiResult,
    RewardRecord,
    Summary,
    UnsentReward,
)

# The client's one logger, named as it was before the client became a package.
logger = logging.getLogger("rewards.mokugift")

# mode (rewards.models.ledger.Mode values) -> (single call, multi call, recipient element)
_CALLS = {
    "email": ("reward", "multi_rewards", "recipient_email"),
    "link": ("reward_url", "multi_reward_urls", "recipient_email"),
    "link-id": ("reward_url2", "multi_reward_urls2", "recipient_id"),
}

# Nesting deeper than this is not the API's XML (the document goes four levels down).
_MAX_DEPTH = 16
# No value of the API is anywhere near this long.
_MAX_TEXT = 64 * 1024
# A reward's tree count fits the mirror's integer column (a billion trees is no reward).
_MAX_TREE_DIGITS = 9
# A count or a code fits an integer column (the monthly summaries', the ledger's).
_MAX_INT = 2**31 - 1
_MAX_INT_DIGITS = len(str(_MAX_INT))


class _RootStarted(Exception):
    """Raised by the prolog guard's parser at the root element: its work is done."""


def _prolog_guard(fail: Callable[[str], None]) -> expat.XMLParserType:
    """A parser that reads only the prolog: it refuses a DOCTYPE before the main parser sees
    it, and names a root element that is not <result>.

    With no DOCTYPE no entity is ever declared (billion laughs) and no external one ever read.
    This is what defusedxml's forbid_dtd=True does, done by expat itself rather than by a scan
    of our own (comments and processing instructions may come before the DOCTYPE).
    """
    guard = expat.ParserCreate("UTF-8")
    guard.StartDoctypeDeclHandler = lambda *args: fail("a DOCTYPE (DTD) is not allowed")

    def root_started(name: str, attributes: object) -> None:
        local = name.rpartition(":")[2]  # this parser does not read namespaces
        if local != "result":
            fail(f"the root element is <{local}>, not <result>")
        raise _RootStarted

    guard.StartElementHandler = root_started
    return guard


@dataclass(frozen=True)
class _Call:
    kind: str  # "single", "multi" or "query"
    label: str  # e.g. "reward_url/c-1", for messages
    mode: str = ""

    @property
    def create(self) -> bool:
        return self.kind != "query"


_STATUSES = {"success": "Success", "failed": "Failed", "part_failed": "Part_Failed"}


def _local(element: Element) -> str:
    """An element's name without its namespace: lxml writes `<result xmlns="urn:x">` as
    "{urn:x}result", and the document names elements alone (a namespaced answer is read as a
    plain one). A namespaced reward leaves the fast path, whose tags are compared as they are."""
    tag = element.tag
    # A parsed element's tag is text; only one set by hand could be bytes or a QName.
    assert isinstance(tag, str)
    return tag.rpartition("}")[2]


_DIGITS = re.compile(r"[0-9]+")
# The elements whose start and end the parser hears of, in any namespace. Everything else
# (a reward's fields, the summary, an error) is read from the tree once its parent has ended.
_EVENT_TAGS = ("{*}result", "{*}status", "{*}rewards", "{*}reward", "{*}unsent_reward")
# Characters fed with no event at all, beyond which text or elements are piling up unseen. A
# value may be _MAX_TEXT long, and the markup around it takes some more.
_MAX_QUIET = 2 * _MAX_TEXT
# libxml2's errors that have a plainer name (its own message follows).
_XML_ERROR_NAMES = {5: "junk after the root element", 26: "undefined entity", 76: "mismatched tag"}
_XML_ERROR_PLACE = re.compile(r", line \d+, column \d+$")


class _ResultParser:
    """Incremental parser of one API answer.

    lxml's pull parser (libxml2) builds the tree and reports only the start and end of
    `result`, `status`, `rewards`, `reward` and `unsent_reward`: two events per reward, not
    two per field. Each `reward` under `rewards` is turned into a result as soon as it ends,
    emptied, and dropped from the tree when the next one ends, so memory does not grow with the
    answer. Everything else under `result` is small and checked (depth, length of text) when
    the root closes. Rewards wait in `pending` for the caller.

    Nothing but those rewards (and a multi call's unsent rewards) may go on and on: whatever
    else piles up in the tree is bounded by _MAX_QUIET characters. A create call's answer is
    bounded too: `asked` rewards at most (made and unsent together), in `max_bytes` at most.
    """

    def __init__(self, call: _Call, *, asked: int | None = None, max_bytes: int | None = None):
        self.call = call
        self.asked = asked
        self.max_bytes = max_bytes
        self._bytes = 0
        self._unsent_seen = 0
        self._root_rewards = 0  # <reward> elements right under <result>: a single call's
        # RewardRecords for a query call, CreatedRewards for a multi call.
        self.pending: deque[RewardRecord | CreatedReward] = deque()
        self.status: str | None = None
        self.done = False  # the root element has closed
        self.outcome: CreateResult | MultiResult | Summary | None = None
        self._fed = False
        self._closed = False
        self._root: Element | None = None
        self._rewards: Element | None = None  # the <rewards> of <result>, once it starts
        self._last_reward: Element | None = None  # the last one read, emptied, still in it
        self._rewards_seen = 0
        self._quiet = 0  # characters fed since the last feed that started or ended an element
        # The document says UTF-8: the bytes are checked here, and the parsers told to read
        # UTF-8 whatever encoding the body declares.
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._decoded = 0  # bytes decoded so far, to say where undecodable ones are
        self._guard: expat.XMLParserType | None = _prolog_guard(self._fail)
        self._pull = etree.XMLPullParser(
            events=("start", "end"),
            tag=_EVENT_TAGS,
            encoding="utf-8",
            no_network=True,
            load_dtd=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )

    # -- feeding

    def feed(self, data: bytes) -> None:
        if data:
            self._fed = True
            self._bytes += len(data)
            if self.max_bytes is not None and self._bytes > self.max_bytes:
                # An endless answer (rewards repeated forever) ends here, in bounded memory.
                self._fail(
                    f"more than {self.max_bytes:,} bytes, longer than an answer for"
                    f" {self.asked} reward{'s' if self.asked != 1 else ''} can be"
                )
            self._push(data, self._check_utf8(data, final=False))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._fed:
            self._fail("the body is empty")
        self._check_utf8(b"", final=True)
        try:
            self._pull.close()
        except etree.XMLSyntaxError as error:
            self._drain()  # what ended before the error is read first, as with a feed
            self._parse_error(error, final=True)
        self._drain()
        if not self.done:  # libxml2 reports an unfinished document itself; this is a backstop
            self._fail("the body ends before </result>")

    def _check_utf8(self, data: bytes, *, final: bool) -> int:
        """How many characters `data` completes; a ProtocolError where it is not UTF-8."""
        held = len(self._decoder.getstate()[0])  # the end of a character cut by the last chunk
        try:
            characters = len(self._decoder.decode(data, final))
        except UnicodeDecodeError as error:
            at = self._decoded - held + error.start
            self._fail(f"malformed XML (bytes that are not UTF-8 at byte {at})")
        self._decoded += len(data)
        return characters

    def _push(self, data: bytes, characters: int) -> None:
        if self._guard is not None:
            try:
                self._guard.Parse(data, False)
            except _RootStarted:
                self._guard = None
            except expat.ExpatError as error:
                # A prolog libxml2 might read differently: refused, so no DOCTYPE slips past.
                self._fail(
                    f"malformed XML ({expat.ErrorString(error.code)}, line {error.lineno},"
                    f" column {error.offset})"
                )
        try:
            self._pull.feed(data)
        except etree.XMLSyntaxError as error:
            self._drain()
            self._parse_error(error, final=False)
        if self._drain():
            self._quiet = 0
            return
        # No reward was read off the tree: text or elements are piling up in libxml2's tree,
        # where the checks at the end of an element cannot see them yet.
        self._quiet += characters
        if self._quiet > _MAX_QUIET:
            self._fail(f"{self._where()} holds more than {_MAX_TEXT} characters")

    def _where(self) -> str:
        """The element being read now: the last one of the tree, going down its last children."""
        if self._root is None:
            return "the prolog"
        element = self._root
        while len(element):
            element = element[-1]
        return f"<{_local(element)}>"

    def _drain(self) -> int:
        """Check the elements that started or ended since the last call; returns how many
        rewards (or a multi call's unsent rewards) ended: the elements that may go on and on.
        A reward of the rewards list takes the short path."""
        count = 0
        for event, element in self._pull.read_events():
            if event == "start":
                if element.tag != "reward":
                    self._start(element)
                continue
            parent = element.getparent()
            if parent is self._rewards and parent is not None:
                self._reward_ended(element, parent)
                count += 1
            else:
                count += self._end(element, parent)
        return count

    def _count_check(self) -> None:
        # Each recipient asked for is made or unsent, never both: more than that is no answer.
        listed = self._rewards_seen + self._unsent_seen
        if self.asked is not None and listed > self.asked:
            self._fail(
                f"{listed} rewards and unsent rewards or more, for {self.asked}"
                f" recipient{'s' if self.asked != 1 else ''} asked for"
            )

    def _reward_ended(self, element: Element, rewards: Element) -> None:
        """A reward of the rewards list: turned into a result now, and emptied.

        It stays in the tree, empty, until the next reward ends: libxml2 may still be adding
        to the text after it (its tail), and removing it now would free that text under the
        parser's feet. The reward before it is removed instead; anything else still before
        it is not a reward. (Another element this parser hears of was refused as it started.)
        """
        previous = element.getprevious()
        if previous is not None:
            if previous is not self._last_reward:
                self._fail(f"<{_local(previous)}> inside <rewards>")
            rewards.remove(previous)
        self._rewards_seen += 1
        if self.call.kind != "query":
            self._count_check()
        self.pending.append(self._reward(element))
        element.clear(keep_tail=True)
        self._last_reward = element

    def _parse_error(self, error: etree.XMLSyntaxError, *, final: bool) -> NoReturn:
        # libxml2 quotes the body in its messages (a name, a namespace): a bounded piece of it.
        reason = _XML_ERROR_PLACE.sub("", error.msg or "")
        if len(reason) > 200:
            reason = reason[:200] + "…"
        if error.code in _XML_ERROR_NAMES:
            reason = f"{_XML_ERROR_NAMES[error.code]}: {reason}"
        line, column = error.position
        if final and not self.done:
            self._fail(f"truncated or not XML ({reason}, line {line})")
        self._fail(f"malformed XML ({reason}, line {line}, column {column})")

    def _fail(self, problem: str) -> NoReturn:
        raise ProtocolError(
            f"Mokugift answered {self.call.label} with a body that is not the API's XML: {problem}",
            create=self.call.create,
        )

    def _check_tree(self, node: Element, depth: int) -> None:
        """What no event watched: the nesting of `node` (at `depth`) and all under it, and the
        length of their text."""
        if depth >= _MAX_DEPTH:
            self._fail("elements nested too deep")
        text = node.text
        if text is not None and len(text) > _MAX_TEXT:
            self._fail(f"<{_local(node)}> holds more than {_MAX_TEXT} characters")
        for child in node:
            self._check_tree(child, depth + 1)

    # -- the elements of result, and result itself

    def _start(self, element: Element) -> None:
        parent = element.getparent()
        if parent is None:
            self._root = element  # its name was checked by the prolog guard
            return
        tag = _local(element)
        if parent is self._rewards:
            if tag != "reward":
                self._fail(f"<{tag}> inside <rewards>")
        elif parent is self._root and tag == "rewards":
            if self.status is None:
                self._fail("<rewards> comes before <status>")
            if self._rewards is not None:
                self._fail("more than one <rewards> in <result>")
            self._rewards = element

    def _end(self, element: Element, parent: Element | None) -> int:
        """Check an element that ended; 1 if it is a multi call's unsent reward, else 0."""
        if parent is None:
            self._finish(element)
            self.done = True
        elif element is self._rewards:
            # What is left in it, but the last reward read, is no reward.
            for child in element:
                if child is not self._last_reward:
                    self._fail(f"<{_local(child)}> inside <rewards>")
        elif parent is self._root and _local(element) == "status":
            if self.status is not None:
                self._fail("more than one <status> in <result>")
            self.status = self._status(self._text_of(element))
        elif parent is self._root and _local(element) == "reward":
            self._root_rewards += 1
            if self._root_rewards > 1 and self.call.kind == "single":
                self._fail("more than one <reward> in <result>")
        elif self.call.kind == "multi" and _local(element) == "unsent_reward":
            # Read from the tree when the root closes: as many as were asked for, at most.
            self._unsent_seen += 1
            self._count_check()
            return 1
        return 0

    # -- reading elements

    @staticmethod
    def _text_of(element: Element) -> str:
        return (element.text or "").strip()

    @overload
    def _one(self, node: Element, tag: str, *, required: Literal[True] = ...) -> Element: ...
    @overload
    def _one(self, node: Element, tag: str, *, required: bool) -> Element | None: ...
    def _one(self, node: Element, tag: str, *, required: bool = True) -> Element | None:
        found = None
        for child in node:
            if _local(child) == tag:
                if found is not None:
                    self._fail(f"more than one <{tag}> in <{_local(node)}>")
                found = child
        if found is None and required:
            self._fail(f"missing <{tag}> in <{_local(node)}>")
        return found

    @overload
    def _text(self, node: Element, tag: str, *, required: Literal[True] = ...) -> str: ...
    @overload
    def _text(self, node: Element, tag: str, *, required: bool) -> str | None: ...
    def _text(self, node: Element, tag: str, *, required: bool = True) -> str | None:
        child = self._one(node, tag, required=required)
        if child is None:
            return None
        if len(child):
            self._fail(f"<{tag}> in <{_local(node)}> holds elements, not text")
        text = self._text_of(child)
        if required and not text:
            self._fail(f"empty <{tag}> in <{_local(node)}>")
        return text

    def _int(self, node: Element, tag: str) -> int:
        """A count or a code: a whole number that fits an integer column. Its digits are
        counted before int() reads them (which refuses more than 4,300 with a ValueError)."""
        text = self._text(node, tag)
        if not _DIGITS.fullmatch(text):
            self._fail(f"<{tag}> in <{_local(node)}> is not a whole number: {text[:40]!r}")
        digits = text.lstrip("0")
        if len(digits) > _MAX_INT_DIGITS or int(digits or "0") > _MAX_INT:
            self._fail(f"<{tag}> in <{_local(node)}> is too large: {text[:40]!r}")
        return int(digits or "0")

    def _status(self, text: str) -> str:
        status = _STATUSES.get(text.casefold())
        if status is None:
            self._fail(f"unknown <status> {text[:40]!r}")
        if status == "Part_Failed" and self.call.kind != "multi":
            self._fail("status Part_Failed is for multi calls only")
        return status

    def _date(self, node: Element) -> dt.datetime:
        text = self._text(node, "date")
        try:
            # "YYYY-MM-DD HH:MM:SS" (the document), a bare "YYYY-MM-DD", ISO 8601 with an
            # offset; a date without one is UTC.
            value = dt.datetime.fromisoformat(text)
            if value.tzinfo is None:
                return value.replace(tzinfo=dt.UTC)
            return value.astimezone(dt.UTC)
        except (ValueError, OverflowError):
            self._fail(f"<date> is not a date: {text[:40]!r}")

    def _reward(self, node: Element) -> RewardRecord | CreatedReward:
        if self.call.kind == "query":
            return self._query_reward(node)
        self._check_tree(node, 2)
        return self._created(node)

    def _query_reward(self, node: Element) -> RewardRecord:
        """A reward of a query answer: the hot path of a million-reward `all_rewards`.

        A reward as the document writes it (leaf children, each tag once, the date as
        "YYYY-MM-DD HH:MM:SS" in UTC) is read in one pass over its children. Anything else
        goes to `_query_reward_checked`, which reads the lenient forms and names what is wrong:
        this path accepts only what that one would accept, with the same result.
        """
        if self.status != "Success":
            self._fail(f"rewards in a {self.status} answer")
        # Keyed by the children's tags as lxml gives them (text, for a parsed element).
        texts: dict[object, str | None] = {}
        if node.text is not None and len(node.text) > _MAX_TEXT:
            return self._query_reward_checked(node)
        for child in node:
            text = child.text
            if len(child) or child.tag in texts or (text is not None and len(text) > _MAX_TEXT):
                return self._query_reward_checked(node)
            texts[child.tag] = text
        # The checked path reads a namespaced child as a plain one, and so refuses a second
        # <id> in another namespace, say: a reward with one goes there. Only a reward with more
        # children than the fields read here can have one (a KeyError awaits one with fewer).
        if len(texts) > 3 + ("recipient_email" in texts) + ("recipient_id" in texts) and any(
            "}" in str(tag) for tag in texts
        ):
            return self._query_reward_checked(node)
        try:
            reward_id = (texts["id"] or "").strip()
            date_text = (texts["date"] or "").strip()
            trees = (texts["tree_count"] or "").strip()
            email = (texts.get("recipient_email") or "").strip()
            recipient_id = (texts.get("recipient_id") or "").strip()
            if (
                reward_id
                and (email or recipient_id)
                and len(date_text) == 19
                and date_text[10] in " T"
                and trees.isascii()
                and trees.isdigit()
                and len(trees.lstrip("0")) <= _MAX_TREE_DIGITS
            ):
                date = dt.datetime.fromisoformat(date_text + "+00:00")
                return RewardRecord(reward_id, date, email, recipient_id, int(trees))
        except (KeyError, ValueError):
            pass
        return self._query_reward_checked(node)

    def _query_reward_checked(self, node: Element) -> RewardRecord:
        self._check_tree(node, 2)
        email = self._text(node, "recipient_email", required=False) or ""
        recipient_id = self._text(node, "recipient_id", required=False) or ""
        if not email and not recipient_id:
            self._fail("a <reward> has neither <recipient_email> nor <recipient_id>")
        reward_id = self._text(node, "id")
        date = self._date(node)
        trees = self._text(node, "tree_count")
        if not (trees.isascii() and trees.isdigit()):
            self._fail(f"<tree_count> in <reward> is not a whole number: {trees[:40]!r}")
        if len(trees.lstrip("0")) > _MAX_TREE_DIGITS:
            self._fail(f"<tree_count> in <reward> is too large: {trees[:40]!r}")
        return RewardRecord(reward_id, date, email, recipient_id, int(trees))

    def _created(self, node: Element) -> CreatedReward:
        recipient_tag = _CALLS[self.call.mode][2]
        url = self._text(node, "url", required=self.call.mode != "email")
        reward_id = self._text(node, "id")
        if url and not _web_address(url):
            # The reward was made (it has its ID), so the answer stands; only its link is
            # refused. A `javascript:` URL would run in our pages when clicked.
            logger.warning(
                "Mokugift answered %s with reward %r whose <url> is not an http(s) address "
                "(%r): a protocol error, the reward is kept without its link",
                self.call.label,
                reward_id[:100],
                url[:40],
            )
            url = None
        return CreatedReward(
            id=reward_id,
            recipient=self._text(node, recipient_tag),
            url=url or None,
        )

    def _error(self, root: Element) -> ApiError:
        error = self._one(root, "error")
        code = self._int(error, "code")
        description = self._text(error, "description", required=False) or ""
        return ApiError(
            code,
            description,
            call=self.call.label,
            create=self.call.create,
            transaction_id=self._text(root, "transaction_id", required=False) or None,
        )

    def _unsent(self, node: Element) -> UnsentReward:
        if _local(node) != "unsent_reward":
            self._fail(f"<{_local(node)}> inside <unsent_rewards>")
        given = self._text(node, "recipient", required=False) or ""
        error = self._one(node, "error")
        code = self._int(error, "code")
        description = self._text(error, "description", required=False) or ""
        return UnsentReward(
            recipient=_address_of(given),
            given=given,
            code=code,
            description=description or ERROR_DESCRIPTIONS.get(code, ""),
        )

    # -- the whole answer

    def _finish(self, root: Element) -> None:
        self._check_tree(root, 0)  # the rewards of the list are gone from it, already read
        version = self._text(root, "version")
        if version.split(".")[0] != "1":
            self._fail(f"unsupported <version> {version[:20]!r}")
        if self.status is None:
            self._fail("missing <status> in <result>")
        if self.status == "Failed":
            if self._rewards_seen:
                self._fail("rewards in a Failed answer")
            raise self._error(root)
        kind = self.call.kind
        if kind == "query":
            if self._one(root, "rewards", required=False) is None:
                self._fail("missing <rewards> in <result>")
            summary = self._one(root, "summary")
            self.outcome = Summary(
                reward_count=self._int(summary, "reward_count"),
                tree_count=self._int(summary, "tree_count"),
            )
            return
        transaction_id = self._text(root, "transaction_id", required=False) or None
        if kind == "single":
            reward = self._one(root, "reward")
            self.outcome = CreateResult(transaction_id=transaction_id, reward=self._created(reward))
            return
        if self._one(root, "rewards", required=False) is None:
            self._fail("missing <rewards> in <result>")
        # All of them: a multi call's rewards are read by _created.
        rewards = [r for r in self.pending if isinstance(r, CreatedReward)]
        self.pending.clear()
        unsent_node = self._one(root, "unsent_rewards", required=self.status == "Part_Failed")
        unsent = [self._unsent(child) for child in unsent_node] if unsent_node is not None else []
        if self.status == "Success" and unsent:
            self._fail(f"status Success with {len(unsent)} unsent rewards")
        if self.status == "Part_Failed" and not unsent:
            self._fail("status Part_Failed without an unsent reward")
        self.outcome = MultiResult(
            status=self.status, transaction_id=transaction_id, rewards=rewards, unsent=unsent
        )


def _web_address(url: str) -> bool:
    """An absolute http or https URL with a host: the only links a reward page may have."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _parse_all(
    call: _Call, chunks: Iterable[bytes], *, asked: int | None = None, max_bytes: int | None = None
) -> CreateResult | MultiResult | Summary | None:
    parser = _ResultParser(call, asked=asked, max_bytes=max_bytes)
    for chunk in chunks:
        parser.feed(chunk)
    parser.close()
    return parser.outcome


def create_body_parse(
    *,
    body: bytes | Iterable[bytes],
    mode: str,
    multi: bool = False,
    asked: int | None = None,
    max_bytes: int | None = None,
) -> CreateResult | MultiResult:
    """Parse the answer of a create call (CreateResult, or MultiResult when multi), of at most
    `asked` rewards in at most `max_bytes` when they are given.

    Raises ApiError for status Failed and ProtocolError for anything that is not the API's
    XML. The client parses the same way; public for tests of the parser on hand-written bodies.
    """
    single_call, multi_call, _ = _CALLS[mode]
    call = _Call(
        kind="multi" if multi else "single", label=multi_call if multi else single_call, mode=mode
    )
    chunks = [body] if isinstance(body, bytes) else body
    outcome = _parse_all(call, chunks, asked=asked, max_bytes=max_bytes)
    assert isinstance(outcome, CreateResult | MultiResult)  # what a create call's parser makes
    return outcome
