"""A real HTTP receiver of webhooks, on 127.0.0.1 in a thread, that answers from a script."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    # What to answer, one per request, the last repeated: a status code, "redirect", "slow",
    # or "endless" (200 and a body that never ends).
    script: list = field(default_factory=lambda: [200])
    received: list[Received] = field(default_factory=list)
    endless_bytes_written: int = 0


@contextmanager
def receiver_running(script: list | None = None) -> Iterator[Receiver]:
    receiver = Receiver(url="", script=list(script or [200]))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            receiver.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            n = len(receiver.received) - 1
            answer = receiver.script[min(n, len(receiver.script) - 1)]
            if answer == "redirect":
                self.send_response(302)
                self.send_header("Location", receiver.url + "elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif answer == "slow":
                time.sleep(2.5)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif answer == "endless":
                self.send_response(200)
                self.end_headers()
                deadline = time.monotonic() + 20
                try:
                    while time.monotonic() < deadline:
                        self.wfile.write(b"x" * 1024)
                        receiver.endless_bytes_written += 1024
                except OSError:
                    pass  # the sender hung up: what we want
                self.close_connection = True
            else:
                self.send_response(int(answer))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
