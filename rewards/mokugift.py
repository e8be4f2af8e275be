"""The Mokugift API v1.0 client: the one module of mokudash that speaks HTTP (and imports requests).

    client = MokugiftClient.for_campaign(campaign)
    result = client.create_reward(mode="link", recipient="sally@chan.com", name="Sally Chan")
    multi = client.create_rewards(mode="email", recipients=[Recipient("a@b.com", "A B")])
    with client.rewards_in_month(month=5, year=2026) as stream:
        for reward in stream: ...
        stream.summary

Errors form one hierarchy (MokugiftError); every instance says `outcome_unknown` (a create call
that may or may not have made its rewards: reconcile before trying again) and `retryable`.
The client never retries a create call; the caller decides, with the ledger in hand. Query
calls are retried here, with backoff, until their first reward has been handed out.

Every call has a deadline as a whole (MOKUGIFT_CALL_DEADLINE), besides its connect and read
timeouts, which only bound each wait on the network: past it the call's socket is shut down
wherever the answer stands (see _Deadline). A create answer holds at most as many rewards as
were asked for, in a bounded number of bytes (MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD).

The protocol is in shared/mokugift-api.md. The parser is lenient where that document says so
(dates, blanks, the case of `status`), strict about everything else, and streams: a query
answer of a million rewards is read in constant memory. Bodies are parsed by lxml (libxml2),
read as UTF-8 whatever they declare, behind the guard of defusedxml: a DOCTYPE, and so any
entity declaration or external entity, is a ProtocolError before anything is expanded or read.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import logging
import math
import os
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, NoReturn, TypedDict, Unpack, overload
from urllib.parse import quote, quote_plus, urlsplit
from xml.parsers import expat

import requests
from lxml import etree
from lxml.etree import _Element as Element
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

import mokudash
from rewards.recipients import name_refusal, recipient_refusal

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from campaigns.models import Campaign

MAX_RECIPIENTS_PER_CALL = 1000

# The error table of the document. A code outside it is still an API error.
ERROR_DESCRIPTIONS = {
    100: "Incorrect HTTP Method",
    101: "Invalid campaign ID",
    102: "Incorrect Passcode",
    103: "Campaign disabled",
    104: "Campaign is expired (by date or budget)",
    105: "Lack of moku-coins",
    110: "Internal error",
    111: "Missing recipient email/ID",
    112: "Invalid email",
    113: "Invalid parameters",
    114: "Over max. number of rewards",
}
NO_COINS = 105
INTERNAL_ERROR = 110

# mode (rewards.models.ledger.Mode values) -> (single call, multi call, recipient element)
_CALLS = {
    "email": ("reward", "multi_rewards", "recipient_email"),
    "link": ("reward_url", "multi_reward_urls", "recipient_email"),
    "link-id": ("reward_url2", "multi_reward_urls2", "recipient_id"),
}

QUERY_TRIES = 3
QUERY_BACKOFF = 0.5  # seconds before the second try; doubled for each further one
STREAM_CHUNK_BYTES = 64 * 1024
# What a create answer may hold besides its rewards: the declaration, version, status,
# transaction ID, an error. Its rewards get MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD each.
ANSWER_ENVELOPE_BYTES = 64 * 1024
# Nesting deeper than this is not the API's XML (the document goes four levels down).
_MAX_DEPTH = 16
# No value of the API is anywhere near this long.
_MAX_TEXT = 64 * 1024
# A reward's tree count fits the mirror's integer column (a billion trees is no reward).
_MAX_TREE_DIGITS = 9
# A count or a code fits an integer column (the monthly summaries', the ledger's).
_MAX_INT = 2**31 - 1
_MAX_INT_DIGITS = len(str(_MAX_INT))


# --- Results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """One recipient of a multi call: an email address, or the caller's own ID (link-id)."""

    address: str
    name: str = ""


@dataclass(frozen=True)
class CreatedReward:
    id: str
    recipient: str  # the email address, or the recipient ID in link-id mode
    url: str | None  # the reward's page, for the link modes; None when Mokugift emails it


@dataclass(frozen=True)
class CreateResult:
    transaction_id: str | None
    reward: CreatedReward


@dataclass(frozen=True)
class UnsentReward:
    recipient: str  # the address or ID, any "Full Name <...>" around it removed
    given: str  # the item as the server returned it
    code: int
    description: str

    @property
    def outcome_unknown(self) -> bool:
        # 110 on a create is "may or may not have been made", for one item as for a call.
        return self.code == INTERNAL_ERROR


@dataclass(frozen=True)
class MultiResult:
    status: str  # "Success" | "Part_Failed"
    transaction_id: str | None
    rewards: list[CreatedReward]
    unsent: list[UnsentReward]


class RewardRecord(NamedTuple):
    """A reward of a query answer. A tuple, not a dataclass: a sync makes one per reward
    listed (a million for a big `all_rewards`), and the mirror's COPY writes it as it is."""

    id: str
    date: dt.datetime  # aware, UTC
    recipient_email: str  # "" for a reward made by recipient ID
    recipient_id: str  # "" for a reward made by email address
    tree_count: int


@dataclass(frozen=True)
class Summary:
    reward_count: int
    tree_count: int


# --- Errors -------------------------------------------------------------------------------


class MokugiftError(Exception):
    """Base of every error of the client.

    outcome_unknown: a create call may or may not have made its reward(s): reconcile with a
    query before sending again. retryable: the same request may succeed later.
    """

    outcome_unknown: bool = False
    retryable: bool = False

    def _scrub(self, secret: str) -> None:
        """Remove a secret from every message this error carries (args and text attributes)."""
        forms = {secret, quote_plus(secret), quote(secret, safe="")}
        forms.discard("")

        def clean(value: object) -> object:
            if isinstance(value, str):
                for form in forms:
                    value = value.replace(form, "[passcode]")
            return value

        self.args = tuple(clean(arg) for arg in self.args)
        for name, value in list(vars(self).items()):
            if isinstance(value, str):
                setattr(self, name, clean(value))


class ApiError(MokugiftError):
    """Mokugift answered status Failed with an error code (100-114)."""

    def __init__(
        self,
        code: int,
        description: str = "",
        *,
        call: str = "",
        create: bool = False,
        transaction_id: str | None = None,
    ):
        self.code = code
        self.description = description or ERROR_DESCRIPTIONS.get(code, "")
        self.call = call
        self.transaction_id = transaction_id
        self.retryable = code in (INTERNAL_ERROR, NO_COINS)
        # 110 on a create call: the server failed somewhere, maybe after making the reward.
        self.outcome_unknown = create and code == INTERNAL_ERROR
        where = f" on {call}" if call else ""
        unknown = " (outcome unknown)" if self.outcome_unknown else ""
        super().__init__(f"Mokugift error {code}{where}: {self.description}{unknown}")

    @property
    def no_coins(self) -> bool:
        """105: the account is out of moku-coins; the same call may succeed once topped up."""
        return self.code == NO_COINS

    @property
    def internal(self) -> bool:
        return self.code == INTERNAL_ERROR


class TransportError(MokugiftError):
    """No API answer: a timeout, a refused or reset connection, an HTTP status other than 200.

    reached_server is False only when the request certainly never reached Mokugift (connection
    refused, connect timeout, name resolution): then nothing was made, even by a create call.
    """

    retryable = True

    def __init__(self, message: str, *, reached_server: bool, create: bool = False):
        self.reached_server = reached_server
        self.outcome_unknown = create and reached_server
        super().__init__(message)


class ProtocolError(TransportError):
    """An answer that is not the API's XML (malformed, truncated, wrong root, a missing
    element, a DTD or entity, more rewards or bytes than a create call can be answered with).
    It came from the server, so for a create call the outcome is unknown."""

    retryable = False

    def __init__(self, message: str, *, create: bool = False):
        unknown = " (outcome unknown)" if create else ""
        super().__init__(message + unknown, reached_server=True, create=create)


class DeadlineExceeded(TransportError):
    """The call was not over by its deadline: a server answering too slowly (perhaps a byte at
    a time, which no read timeout catches) was cut off. For a create call that reached the
    server the outcome is unknown."""

    def __init__(self, message: str, *, seconds: float, reached_server: bool, create: bool):
        self.seconds = seconds
        super().__init__(message, reached_server=reached_server, create=create)


class RecipientRefused(MokugiftError, ValueError):
    """A recipient the client will not send (raised before any request is made)."""

    def __init__(self, reason: str, *, index: int | None = None):
        self.reason = reason
        self.index = index
        at = f"recipient {index + 1}: " if index is not None else ""
        super().__init__(f"{at}{reason}")


# --- recipient_list -----------------------------------------------------------------------


def recipient_list_build(*, recipients: Sequence[Recipient], by_id: bool = False) -> str:
    """The recipient_list of a multi call, or RecipientRefused (nothing is sent then)."""
    if not recipients:
        raise RecipientRefused("a multi call needs at least one recipient")
    if len(recipients) > MAX_RECIPIENTS_PER_CALL:
        raise RecipientRefused(
            f"{len(recipients)} recipients: at most {MAX_RECIPIENTS_PER_CALL} per call"
        )
    items = []
    for index, recipient in enumerate(recipients):
        address, name = recipient.address.strip(), recipient.name.strip()
        # The preview applies the same rule, so a row it passed is never refused here.
        reason = recipient_refusal(recipient=address, by_id=by_id) or name_refusal(name=name)
        if reason:
            raise RecipientRefused(reason, index=index)
        items.append(f"{name} <{address}>" if name else address)
    return ",".join(items)


def _address_of(item: str) -> str:
    """The address of an item of recipient_list: "Full Name <address>" or a bare address."""
    item = item.strip()
    # No regex: the item comes from the server, and a pattern with blanks on both sides of a
    # lazy group backtracks quadratically on a long run of blanks.
    if item.endswith(">") and "<" in item:
        return item[item.rindex("<") + 1 : -1].strip()
    return item


# --- The parser ---------------------------------------------------------------------------


class _RootStarted(Exception):
    """Raised by the prolog guard's parser at the root element: its work is done."""


def _prolog_guard(fail: Callable[[str], None]) -> expat.XMLParserType:
    """A parser that reads only the prolog: it refuses a DOCTYPE before the main parser sees
    it, and names a root element that is not <result>.

    With no DOCTYPE no entity is ever declared (billion laughs) and no external one ever read.
    This is defusedxml's guard, done by expat itself rather than by a scan of our own (comments
    and processing instructions may come before the DOCTYPE).
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


def query_body_stream(*, chunks: Iterable[bytes], label: str = "all_rewards") -> RewardStream:
    """A RewardStream over the chunks of a query answer (for tests and local files)."""
    call = _Call(kind="query", label=label)
    iterator = iter(chunks)
    return RewardStream(call=call, opener=lambda _deadline: (iterator, None), tries=1)


# --- Deadlines ----------------------------------------------------------------------------

# Guards a connection's owner and its cut: a deadline cuts a socket only while its call owns
# the connection, never one handed back to the pool and sending another call's request.
_cut_lock = threading.Lock()
# The deadline of the call this thread is making, for the connection its request goes out on.
_calling = threading.local()


class _Deadline:
    """The deadline of one call as a whole, from its request to the end of its answer.

    Connect and read timeouts bound each wait on the network, so a server that sends a byte
    every few seconds (a slow-loris answer) never trips them. Past the deadline a timer shuts
    the call's socket down: a recv blocked anywhere in the answer (its status line, a header,
    a chunk's size, the body) returns at once, and the call fails with DeadlineExceeded. The
    reader also looks at the clock before each chunk, for an answer that flows but never ends.
    `seconds` None: no deadline (a local file).
    """

    _CUT_AGAIN = 0.05  # seconds: a call still connecting has no socket to cut yet
    _CUT_TRIES = 200

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.at = math.inf
        self.fired = False
        self._connection: _CuttableConnection | None = None
        self._started = False
        self._over = False
        self._timer: threading.Timer | None = None
        self._tries = 0

    def start(self) -> None:
        if self.seconds is None or self._started:
            return
        self._started = True
        self.at = time.monotonic() + self.seconds
        self._arm(self.seconds)

    def stop(self) -> None:
        with _cut_lock:
            self._over = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def passed(self) -> bool:
        return self.fired or time.monotonic() >= self.at

    def timeout(self, connect: float, read: float) -> tuple[float, float] | Timeout:
        """The request's timeouts: no wait on the network may outlast the deadline either (a
        connect is not cut, so this is what bounds it)."""
        if self.seconds is None:
            return (connect, read)
        return Timeout(connect=connect, read=read, total=max(self.at - time.monotonic(), 0.001))

    def cut(self) -> bool:
        """Shut the call's socket down now, if the call still owns its connection."""
        with _cut_lock:
            connection = self._connection
            if self._over or connection is None or connection._deadline is not self:
                return False
            sock = connection.sock
            if not isinstance(sock, socket.socket):
                return False
            # The plain socket's shutdown, not an SSL socket's own (which drops its SSL object
            # under the read another thread may be making): the kernel ends the blocked recv.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            connection._cut = True
            return True

    def error(self, call: _Call, *, reached_server: bool) -> DeadlineExceeded:
        unknown = " (outcome unknown)" if call.create and reached_server else ""
        return DeadlineExceeded(
            f"Mokugift {call.label}: no complete answer within the call's deadline of"
            f" {self.seconds:g} s{unknown}",
            seconds=self.seconds or 0.0,
            reached_server=reached_server,
            create=call.create,
        )

    def instead_of(self, error: MokugiftError, call: _Call) -> MokugiftError:
        """What a cut by the deadline caused (a reset, a truncated body) is the deadline's."""
        if (
            self.fired
            and isinstance(error, TransportError)
            and not isinstance(error, DeadlineExceeded)
        ):
            return self.error(call, reached_server=error.reached_server)
        return error

    def _fire(self) -> None:
        self.fired = True
        if not self.cut() and not self._over and self._tries < self._CUT_TRIES:
            self._tries += 1
            self._arm(self._CUT_AGAIN)

    def _arm(self, delay: float) -> None:
        timer = threading.Timer(delay, self._fire)
        timer.daemon = True
        with _cut_lock:
            if self._over:
                return
            self._timer = timer
        timer.start()


class _CuttableConnection(HTTPConnection):
    """Mixed into the connections of our session's pools: a request tells the deadline of the
    call this thread is making which connection it went out on. A connection whose socket a
    deadline cut after its call had finished with it is replaced before its next request."""

    _deadline: _Deadline | None = None
    _cut = False

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = getattr(_calling, "deadline", None)
        with _cut_lock:
            if self._cut:
                self.close()
                self._cut = False
            self._deadline = deadline
            if deadline is not None:
                deadline._connection = self
        return super().request(*args, **kwargs)


class _Connection(_CuttableConnection, HTTPConnection):
    pass


class _TLSConnection(_CuttableConnection, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOL_CLASSES = {"http": _Pool, "https": _TLSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter, whose pools make connections that a call's deadline can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # SOCKS pools are classes of their own: behind one, only the clock between chunks.
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


# --- Streams ------------------------------------------------------------------------------


class RewardStream:
    """The rewards of a query call, one RewardRecord at a time, parsed as the bytes arrive.

    A context manager: closing it closes the HTTP response. `summary` is set once the stream
    is exhausted. The request is made on entering the `with` block or at the first `next()`;
    until the answer's status has been read, a transport failure or error 110 is retried with
    backoff. After that a failure is raised as it comes (the caller has rewards already).
    `deadline`: seconds from the first request for the whole answer, retries included, to
    have been read (None: none).
    """

    def __init__(
        self,
        *,
        call: _Call,
        opener: Callable[[_Deadline], tuple[Iterator[bytes], Callable[[], None] | None]],
        tries: int = QUERY_TRIES,
        backoff: float = QUERY_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        secret: str = "",
        deadline: float | None = None,
    ):
        self.summary: Summary | None = None
        self._call = call
        self._opener = opener
        self._tries = max(1, tries)
        self._backoff = backoff
        self._sleep = sleep
        self._secret = secret
        self._deadline = _Deadline(deadline)
        self._parser: _ResultParser | None = None
        self._chunks: Iterator[bytes] | None = None
        self._closer: Callable[[], None] | None = None
        self._finished = False
        self._closed = False

    def __enter__(self) -> RewardStream:
        self._ensure_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> RewardStream:
        return self

    def __next__(self) -> RewardRecord:
        if self._closed and self._parser is not None:
            raise StopIteration  # exhausted, failed or closed by the caller
        self._ensure_open()
        try:
            return self._next()
        except MokugiftError as error:
            failure = error
        self.close()
        failure = self._deadline.instead_of(failure, self._call)
        if self._secret:
            failure._scrub(self._secret)
        raise failure

    def close(self) -> None:
        """Close the answer. Closed before its end (perhaps by another thread than the one
        reading it), its socket is shut down too, so that a read waiting on it ends now."""
        self._closed = True
        if not self._finished:
            self._deadline.cut()
        self._deadline.stop()
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def _next(self) -> RewardRecord:
        parser = self._parser
        assert parser is not None  # made by _ensure_open
        while not parser.pending:
            if self._finished:
                self.close()
                raise StopIteration
            chunk = self._read()
            if chunk is None:
                parser.close()
                self._finished = True
                assert isinstance(parser.outcome, Summary)  # what a query call's parser makes
                self.summary = parser.outcome
            else:
                parser.feed(chunk)
        reward = parser.pending.popleft()
        assert isinstance(reward, RewardRecord)  # a query call's parser reads no other
        return reward

    def _read(self) -> bytes | None:
        assert self._chunks is not None  # set by _open_once
        if self._deadline.passed():
            raise self._deadline.error(self._call, reached_server=True)
        error = None
        try:
            return next(self._chunks)
        except StopIteration:
            return None
        except (requests.RequestException, OSError) as exc:
            error = _transport_error(exc, call=self._call, reading=True)
        raise error  # outside the except block: the requests exception is not its context

    def _ensure_open(self) -> None:
        if self._parser is not None:
            return
        if self._closed:
            raise ValueError("this RewardStream is closed")
        self._deadline.start()
        attempt = 0
        while True:
            failure = None
            try:
                self._open_once()
                return
            except (TransportError, ApiError) as error:
                failure = error
            self._drop_response()
            failure = self._deadline.instead_of(failure, self._call)
            if self._secret:
                failure._scrub(self._secret)
            attempt += 1
            again = (
                isinstance(failure, TransportError)
                and failure.retryable
                and not isinstance(failure, DeadlineExceeded)
            ) or (isinstance(failure, ApiError) and failure.internal)
            if not again or attempt >= self._tries:
                self._closed = True
                self._deadline.stop()
                raise failure
            # Exponential backoff with jitter: 0.5-1.5 x backoff x 2^(tries so far - 1).
            self._sleep(self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))

    def _open_once(self) -> None:
        self._chunks, self._closer = self._opener(self._deadline)
        parser = _ResultParser(self._call)
        # Read until the status is known: a Failed answer (perhaps 110, worth another try) is
        # raised here, before any reward has been handed out.
        while parser.status != "Success" and not parser.done:
            chunk = self._read()
            if chunk is None:
                parser.close()
                break
            parser.feed(chunk)
        self._parser = parser

    def _drop_response(self) -> None:
        self._parser = None
        self._chunks = None
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()


# --- HTTP ---------------------------------------------------------------------------------

_session: requests.Session | None = None
_session_pid: int | None = None
_session_lock = threading.Lock()


def session_get() -> requests.Session:
    """The process's one Session. A forked child (a Celery worker) makes its own: a pool of
    sockets shared across a fork would mix two processes' bytes on one connection."""
    global _session, _session_pid
    pid = os.getpid()
    if _session is None or _session_pid != pid:
        with _session_lock:
            if _session is None or _session_pid != pid:
                session = requests.Session()
                # No retries below us: a create call must never be sent twice by a library.
                adapter = _Adapter(
                    pool_connections=4, pool_maxsize=16, max_retries=Retry(total=0, read=False)
                )
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = f"mokudash/{mokudash.__version__}"
                session.headers["Accept"] = "application/xml, text/xml;q=0.9, */*;q=0.1"
                _session, _session_pid = session, pid
    return _session


def _never_reached(exc: BaseException) -> bool:
    """True when the request certainly never left this machine for the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        # Usually the handshake of a new connection, before a byte of the request; but on a
        # reused connection it may come after the request went out. Saying "never reached"
        # wrongly would let a caller send twice, so we do not say it.
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        # Refused, unreachable, name resolution (NameResolutionError is a NewConnectionError).
        return isinstance(reason, NewConnectionError | ConnectTimeoutError)
    return isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema,
    )


def _transport_error(exc: BaseException, *, call: _Call, reading: bool = False) -> TransportError:
    reached = not _never_reached(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        what = "connect timeout"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        what = "read timeout"
    elif reading:
        what = "connection failed while reading the answer"
    elif reached:
        what = "connection failed after the request was sent"
    else:
        what = "could not connect"
    # The class and message of the library's exception help; they hold the URL (which has no
    # secret in it) and never the POST body. The client scrubs the passcode anyway.
    detail = f"{type(exc).__name__}: {exc}"[:500]
    unknown = " (outcome unknown)" if call.create and reached else ""
    return TransportError(
        f"Mokugift {call.label}: {what}{unknown}: {detail}",
        reached_server=reached,
        create=call.create,
    )


class ClientOptions(TypedDict, total=False):
    """MokugiftClient's arguments besides the campaign's own (for `for_campaign`)."""

    timeout: tuple[float, float] | None
    query_tries: int
    query_backoff: float
    sleep: Callable[[float], None]


class MokugiftClient:
    """One Mokugift campaign's calls. Cheap to make: the HTTP pool is the process's."""

    def __init__(
        self,
        *,
        base_url: str,
        campaign_id: str,
        passcode: str | None = None,
        timeout: tuple[float, float] | None = None,
        deadline: float | None = None,
        answer_bytes_per_reward: int | None = None,
        query_tries: int = QUERY_TRIES,
        query_backoff: float = QUERY_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ):
        """`timeout` (connect, read) bounds each wait on the network, `deadline` a call as a
        whole (seconds; a query's stream as a whole, retries included); the settings'
        MOKUGIFT_* values when not given."""
        if timeout is None or deadline is None or answer_bytes_per_reward is None:
            from django.conf import settings

            if timeout is None:
                timeout = (settings.MOKUGIFT_CONNECT_TIMEOUT, settings.MOKUGIFT_READ_TIMEOUT)
            if deadline is None:
                deadline = settings.MOKUGIFT_CALL_DEADLINE
            if answer_bytes_per_reward is None:
                answer_bytes_per_reward = settings.MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.campaign_id = campaign_id
        self.timeout = timeout
        self.deadline = deadline
        self.answer_bytes_per_reward = answer_bytes_per_reward
        self.query_tries = query_tries
        self.query_backoff = query_backoff
        self._passcode = passcode or ""
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"MokugiftClient(base_url={self.base_url!r}, campaign_id={self.campaign_id!r})"

    @classmethod
    def for_campaign(cls, campaign: Campaign, **kwargs: Unpack[ClientOptions]) -> MokugiftClient:
        """The client of a campaigns.Campaign; its passcode is read (decrypted) here."""
        return cls(
            base_url=campaign.api_base_url,
            campaign_id=campaign.campaign_id,
            passcode=campaign.passcode,
            **kwargs,
        )

    # -- create calls (never retried here)

    def create_reward(self, *, mode: str, recipient: str, name: str = "") -> CreateResult:
        """One reward: "email" (reward/), "link" (reward_url/) or "link-id" (reward_url2/)."""
        single_call, _, recipient_field = _calls_of(mode)
        data = {"recipient_name": name} if name else {}
        data[recipient_field] = recipient
        result = self._create(call=single_call, mode=mode, multi=False, data=data, asked=1)
        assert isinstance(result, CreateResult)  # what a single call's parser makes
        return result

    def create_rewards(self, *, mode: str, recipients: Sequence[Recipient]) -> MultiResult:
        """One reward per recipient (at most 1,000), by multi_rewards, multi_reward_urls or
        multi_reward_urls2. Raises RecipientRefused, before sending, for a list it cannot send."""
        _, multi_call, _ = _calls_of(mode)
        recipient_list = recipient_list_build(recipients=recipients, by_id=mode == "link-id")
        result = self._create(
            call=multi_call,
            mode=mode,
            multi=True,
            data={"recipient_list": recipient_list},
            asked=len(recipients),
        )
        assert isinstance(result, MultiResult)  # what a multi call's parser makes
        return result

    def _create(
        self, *, call: str, mode: str, multi: bool, data: dict[str, str], asked: int
    ) -> CreateResult | MultiResult | Summary | None:
        label = f"{call}/{self.campaign_id}"
        parse_call = _Call(kind="multi" if multi else "single", label=label, mode=mode)
        form = {"passcode": self._passcode, **data}
        try:
            return self._send(parse_call, path=self._path(call), data=form, asked=asked)
        except MokugiftError as error:
            error._scrub(self._passcode)
            raise

    # -- query calls (streamed, retried with backoff until the first reward)

    def rewards_in_month(
        self, *, month: int | None = None, year: int | None = None, deadline: float | None = None
    ) -> RewardStream:
        """The rewards of one month (the current month, in UTC, when neither is given).
        `deadline`: seconds for the whole answer, instead of the client's."""
        if (month is None) != (year is None):
            raise ValueError("give both month and year, or neither")
        path = self._path("rewards_in_month")
        if month is not None and year is not None:
            path += f"/{int(month)}/{int(year)}"
        label = f"rewards_in_month/{self.campaign_id}"
        return self._query(path=path, label=label, deadline=deadline)

    def all_rewards(self, *, deadline: float | None = None) -> RewardStream:
        """Every reward the campaign ever made. A large answer: iterate, never list().
        `deadline`: seconds for the whole answer, instead of the client's."""
        label = f"all_rewards/{self.campaign_id}"
        return self._query(path=self._path("all_rewards"), label=label, deadline=deadline)

    def _query(self, *, path: str, label: str, deadline: float | None = None) -> RewardStream:
        call = _Call(kind="query", label=label)
        return RewardStream(
            call=call,
            opener=lambda within: self._open(call, method="GET", path=path, deadline=within),
            tries=self.query_tries,
            backoff=self.query_backoff,
            sleep=self._sleep,
            secret=self._passcode,
            deadline=self.deadline if deadline is None else deadline,
        )

    # -- HTTP

    def _path(self, call: str) -> str:
        return f"{call}/{quote(self.campaign_id, safe='')}"

    def _open(
        self,
        call: _Call,
        *,
        method: str,
        path: str,
        deadline: _Deadline,
        data: dict[str, str] | None = None,
    ) -> tuple[Iterator[bytes], Callable[[], None]]:
        """Send the request; the answer's body chunks and a function closing the response."""
        if deadline.passed():
            raise deadline.error(call, reached_server=False)
        error = None
        _calling.deadline = deadline
        try:
            response = session_get().request(
                method,
                self.base_url + path,
                data=data,
                # requests passes a urllib3 Timeout through as it is; its stubs do not say so.
                timeout=deadline.timeout(*self.timeout),  # type: ignore[arg-type]
                stream=True,
                allow_redirects=False,
            )
        except (requests.RequestException, OSError) as exc:
            error = _transport_error(exc, call=call)
            if deadline.passed():
                error = deadline.error(call, reached_server=error.reached_server)
        finally:
            _calling.deadline = None
        if error is not None:
            raise error  # raised outside the except block: no requests exception as context
        if response.status_code != 200:
            response.close()
            kind = "HTTP 5xx" if response.status_code >= 500 else "unexpected HTTP status"
            unknown = " (outcome unknown)" if call.create else ""
            raise TransportError(
                f"Mokugift {call.label}: {kind} {response.status_code}{unknown}",
                reached_server=True,
                create=call.create,
            )
        return response.iter_content(chunk_size=STREAM_CHUNK_BYTES), response.close

    def _send(
        self, call: _Call, *, path: str, data: dict[str, str], asked: int
    ) -> CreateResult | MultiResult | Summary | None:
        """A create call: the whole answer, parsed, within the deadline and the bounds."""
        deadline = _Deadline(self.deadline)
        deadline.start()
        try:
            return self._send_within(call, path=path, data=data, asked=asked, deadline=deadline)
        except TransportError as error:
            failure = error
        finally:
            deadline.stop()
        raise deadline.instead_of(failure, call)

    def _send_within(
        self, call: _Call, *, path: str, data: dict[str, str], asked: int, deadline: _Deadline
    ) -> CreateResult | MultiResult | Summary | None:
        chunks, close = self._open(call, method="POST", path=path, data=data, deadline=deadline)
        try:
            parser = _ResultParser(
                call,
                asked=asked,
                max_bytes=ANSWER_ENVELOPE_BYTES + asked * self.answer_bytes_per_reward,
            )
            while True:
                if deadline.passed():
                    raise deadline.error(call, reached_server=True)
                error = None
                try:
                    chunk = next(chunks, None)
                except (requests.RequestException, OSError) as exc:
                    error = _transport_error(exc, call=call, reading=True)
                if error is not None:
                    raise error
                if chunk is None:
                    break
                parser.feed(chunk)
            parser.close()
            return parser.outcome
        finally:
            close()


def _calls_of(mode: str) -> tuple[str, str, str]:
    try:
        return _CALLS[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}: one of {', '.join(_CALLS)}") from None
