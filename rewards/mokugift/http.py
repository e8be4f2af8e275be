"""The client's HTTP: the one module of mokudash that imports requests (ruff's TID251).

The process's one Session (session_get); a request sent and its answer handed back as body
chunks (http_open), with what a failure of the transport means (TransportError: did the
request reach the server?); and each call's deadline as a whole (_Deadline), whose timer cuts
the call's socket through the urllib3 connections of our session's pools. What a call means
is client's; reading a query answer as it arrives is stream's.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

import mokudash
from rewards.mokugift.errors import DeadlineExceeded, MokugiftError, TransportError
from rewards.mokugift.parser import _Call

STREAM_CHUNK_BYTES = 64 * 1024
# A pooled connection idle longer than this is closed and a new one opened for the next call.
# A server closes an idle keep-alive connection when it likes (gunicorn after 2 s, nginx 75 s);
# a request sent at that moment meets a reset, and for a create call a reset after sending is
# an outcome unknown: the rows wait for reconciliation. Below the shortest keep-alive we meet,
# so a connection is reused only while a server surely still holds it open; a steady send
# reuses its connections, a worker back from a pause pays one connect.
REUSE_IDLE_SECONDS = 1.0


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


class _FreshPool(HTTPConnectionPool):
    """Mixed into our pools: a connection handed back is stamped, and one idle longer than
    REUSE_IDLE_SECONDS is closed when taken, so that the call connects anew (urllib3's own
    check sees only a close that has already reached us, not one on its way)."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn: Any = super()._get_conn(timeout)
        idle_since = getattr(conn, "_idle_since", None)
        if idle_since is not None and time.monotonic() - idle_since > REUSE_IDLE_SECONDS:
            conn.close()
        conn._idle_since = None
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn._idle_since = time.monotonic()
        super()._put_conn(conn)


class _Pool(_FreshPool, HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(_FreshPool, HTTPSConnectionPool):
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


def http_open(
    call: _Call,
    *,
    method: str,
    url: str,
    timeout: tuple[float, float],
    deadline: _Deadline,
    data: dict[str, str] | None = None,
) -> tuple[Iterator[bytes], Callable[[], None]]:
    """Send the request; the answer's body chunks and a function closing the response. A
    failure, sending or reading, is a TransportError (or the deadline's DeadlineExceeded),
    never an exception of requests; a status other than 200 is one too."""
    if deadline.passed():
        raise deadline.error(call, reached_server=False)
    error = None
    _calling.deadline = deadline
    try:
        response = session_get().request(
            method,
            url,
            data=data,
            # requests passes a urllib3 Timeout through as it is; its stubs do not say so.
            timeout=deadline.timeout(*timeout),  # type: ignore[arg-type]
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
    return _chunks_read(response.iter_content(chunk_size=STREAM_CHUNK_BYTES), call), response.close


def _chunks_read(chunks: Iterator[bytes], call: _Call) -> Iterator[bytes]:
    """The body's chunks, a failure while reading them a TransportError."""
    while True:
        error = None
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except (requests.RequestException, OSError) as exc:
            error = _transport_error(exc, call=call, reading=True)
        if error is not None:
            raise error  # outside the except block: the requests exception is not its context
        yield chunk
