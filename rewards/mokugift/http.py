"""The client's HTTP: the one module of mokudash that imports requests (ruff's TID251).

MokugiftClient and its calls; RewardStream, a query answer read as it arrives, retried with
backoff until its first reward; the process's one Session (session_get) and what a failure of
the transport means (TransportError: did the request reach the server?); and each call's
deadline as a whole (_Deadline), whose timer cuts the call's socket through the urllib3
connections of our session's pools. Answers are parsed by parser._ResultParser as they come.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

import mokudash
from rewards.mokugift.errors import (
    CAMPAIGN_REFUSALS,
    MISSING_RECIPIENT,
    ApiError,
    DeadlineExceeded,
    MokugiftError,
    ProtocolError,
    TransportError,
)
from rewards.mokugift.parser import _CALLS, _Call, _ResultParser
from rewards.mokugift.recipient_list import Recipient, recipient_list_build
from rewards.mokugift.results import (
    CampaignCheck,
    CreateResult,
    MultiResult,
    RewardRecord,
    Summary,
)

if TYPE_CHECKING:
    from campaigns.models import Campaign

QUERY_TRIES = 3
QUERY_BACKOFF = 0.5  # seconds before the second try; doubled for each further one
STREAM_CHUNK_BYTES = 64 * 1024
# What a create answer may hold besides its rewards: the declaration, version, status,
# transaction ID, an error. Its rewards get MOKUGIFT_MAX_ANSWER_BYTES_PER_REWARD each.
ANSWER_ENVELOPE_BYTES = 64 * 1024


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


def query_body_stream(*, chunks: Iterable[bytes], label: str = "all_rewards") -> RewardStream:
    """A RewardStream over the chunks of a query answer (for tests and local files)."""
    call = _Call(kind="query", label=label)
    iterator = iter(chunks)
    return RewardStream(call=call, opener=lambda _deadline: (iterator, None), tries=1)


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
    deadline: float | None
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

    def check_campaign(self) -> CampaignCheck:
        """Whether Mokugift accepts this campaign ID and passcode, making nothing.

        A reward_url call with no recipient: Mokugift checks the campaign ID, the passcode,
        whether the campaign is enabled and not expired, and only then the recipient, so 111
        (missing recipient) means all of those passed, and 101-104 says which did not.
        Anything else raises: a TransportError (no answer: we cannot tell), an ApiError with
        another code (110, or a code this call should never get), and a ProtocolError for a
        Success, which would mean Mokugift made a reward for no one.
        """
        try:
            self._create(call="reward_url", mode="link", multi=False, data={}, asked=1)
        except ApiError as error:
            if error.code == MISSING_RECIPIENT:
                return CampaignCheck(accepted=True, code=error.code, description=error.description)
            if error.code in CAMPAIGN_REFUSALS:
                return CampaignCheck(accepted=False, code=error.code, description=error.description)
            raise
        raise ProtocolError(
            f"Mokugift reward_url/{self.campaign_id}: status Success for a call with no "
            "recipient (a reward may have been made for no one)"
        )

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
