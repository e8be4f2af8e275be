"""A real SMTP server on loopback for the tests that send mail (aiosmtpd), and the links in
what it received."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class _Inbox:
    """aiosmtpd's handler: every message it is given, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"


class SMTPServer:
    """`messages`, `wait_for(to=..., count=1)` and `links(message)`; host and port."""

    def __init__(self) -> None:
        self._inbox = _Inbox()
        self.host = "127.0.0.1"
        # A free port, asked of the system: aiosmtpd's controller checks that its server is up
        # by connecting to the port it was given, so it cannot be given 0.
        with socket.socket() as probe:
            probe.bind((self.host, 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self._inbox, hostname=self.host, port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self._inbox.messages)

    def wait_for(self, *, to: str, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages to this address, once there are `count` of them (mail sent by another
        process, the worker or the live server, takes a moment)."""
        deadline = time.monotonic() + timeout
        with self._inbox._arrived:
            while True:
                found = [m for m in self._inbox.messages if to in m["X-Envelope-To"]]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{count} message(s) to {to} expected, {len(found)} arrived in "
                        f"{timeout:g} s (all: {[m['To'] for m in self._inbox.messages]})"
                    )
                self._inbox._arrived.wait(left)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    assert part is not None, "a message without a text body"
    return part.get_content()


def links(message: EmailMessage) -> list[str]:
    """The http(s) addresses in a message's text, in order."""
    return re.findall(r"https?://[^\s<>\"']+", body_text(message))
