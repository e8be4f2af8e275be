"""A tiny real HTTP server on 127.0.0.1 for the client's tests: it answers each request with
the next scripted behaviour (a body, a status, a delay, a reset) and records what it got."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    # The client's port: two requests from one port came on one connection.
    port: int = 0


@dataclass
class LocalServer:
    url: str
    received: list[Received] = field(default_factory=list)
    script: list[Callable[[BaseHTTPRequestHandler], None]] = field(default_factory=list)
    # Set by a streaming answer when the client went away before the end.
    client_went_away: threading.Event = field(default_factory=threading.Event)
    # (path prefix, behaviour): every request under the prefix, before the script.
    routes: list[tuple[str, Callable[[BaseHTTPRequestHandler], None]]] = field(default_factory=list)

    def then(self, *behaviours: Callable[[BaseHTTPRequestHandler], None]) -> LocalServer:
        self.script.extend(behaviours)
        return self

    def always(self, prefix: str, behaviour: Callable[[BaseHTTPRequestHandler], None]):
        """Answer every request whose path starts with `prefix` (after /api/) so, in any
        order: for a worker's calls, which come as they come."""
        self.routes.append(("/api/" + prefix, behaviour))
        return self


# --- Behaviours ---------------------------------------------------------------------------


def body(text: str | bytes, *, status: int = 200, content_type: str = "application/xml"):
    data = text.encode() if isinstance(text, str) else text

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def status(code: int, text: str = "Internal Server Error"):
    return body(text, status=code, content_type="text/plain")


def redirect(location: str = "http://127.0.0.1:9/elsewhere"):
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def delay(seconds: float, then=None):
    """Answer late (past a client's read timeout), then perhaps answer anyway."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        if then is not None:
            with contextlib.suppress(OSError):
                then(handler)

    return answer


def reset(handler: BaseHTTPRequestHandler) -> None:
    """Read the request, then reset the connection (RST) without a byte of answer."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


def keepalive(seconds: float, then):
    """A server's keep-alive of `seconds`, caught at its worst moment: a request on a
    connection idle longer than that arrives just as the server closes it, and is reset
    unanswered (as gunicorn's closing of an idle connection meets a request on its way)."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        answered = getattr(handler, "_answered_at", None)
        if answered is not None and time.monotonic() - answered > seconds:
            reset(handler)
            return
        then(handler)
        handler._answered_at = time.monotonic()  # type: ignore[attr-defined]

    return answer


def chunks(parts: Iterable[bytes], *, cut: bool = False):
    """A chunked (streamed) answer; `cut` closes the connection before the last chunk."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for part in parts:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            if cut:
                reset(handler)
                return
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            server_of(handler).client_went_away.set()
        handler.close_connection = True

    return answer


def dribble(answer: bytes, *, every: float, headers_first: bool = False, at_most: float = 5.0):
    """A slow-loris answer: one byte every `every` seconds, which no read timeout longer than
    that ever trips; from the status line on, or with `headers_first` from the body on. It
    gives up after `at_most` seconds (the test has long failed by then)."""

    def answer_slowly(handler: BaseHTTPRequestHandler) -> None:
        data = answer
        if headers_first:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
        else:
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(answer)}\r\n\r\n"
            )
            data = head.encode() + answer
        handler.wfile.flush()
        until = time.monotonic() + at_most
        try:
            for byte in data:
                if time.monotonic() > until:
                    break
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(every)
        except OSError:
            server_of(handler).client_went_away.set()
        handler.close_connection = True

    return answer_slowly


def server_of(handler: BaseHTTPRequestHandler) -> LocalServer:
    return handler.server.local  # type: ignore[attr-defined]


# --- The server ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the signature of the base class
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        local = server_of(self)
        local.received.append(
            Received(
                method=self.command,
                path=self.path,
                headers=dict(self.headers.items()),
                form={k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()},
                port=self.client_address[1],
            )
        )
        routed = [b for prefix, b in local.routes if self.path.startswith(prefix)]
        if routed:
            behaviour = routed[0]
        else:
            behaviour = local.script.pop(0) if local.script else status(599, "no script left")
        behaviour(self)

    do_GET = _handle  # noqa: N815 - http.server's names
    do_POST = _handle  # noqa: N815


@contextlib.contextmanager
def local_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.local = LocalServer(url=f"http://127.0.0.1:{httpd.server_address[1]}/api/")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield httpd.local
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def unaccepting_port():
    """A port on 127.0.0.1 whose listen queue is full: a new connection waits and times out.

    The kernel drops a SYN while the accept queue of a listener is full, so connecting hangs
    until the client's connect timeout (only loopback traffic is involved).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
