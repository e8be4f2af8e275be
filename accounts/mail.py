"""Mail on a developer's machine without a mail server: every message is printed to the log
and kept as a file under var/mail/, where the outbox page (accounts.views.outbox) reads it.
The web server and the worker are separate processes in `make run`: files are what both see."""

from __future__ import annotations

import email
import email.policy
import sys
import time
from dataclasses import dataclass
from email.message import EmailMessage as ParsedMessage
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

# The newest messages the outbox page shows.
OUTBOX_LIMIT = 50


def outbox_dir() -> Path:
    return Path(settings.VAR_DIR) / "mail"


class OutboxBackend(BaseEmailBackend):
    """Prints each message (to standard output, which `make run` shows) and keeps it."""

    def send_messages(self, email_messages: Any) -> int:
        folder = outbox_dir()
        folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            assert isinstance(message, EmailMessage)
            data = message.message().as_bytes()
            name = f"{time.time_ns()}-{sent}.eml"
            (folder / name).write_bytes(data)
            print(
                f"--- mail to {', '.join(message.recipients())}: {message.subject} "
                f"(readable at /dev/outbox/)\n{message.body}\n--- end of mail",
                file=sys.stdout,
                flush=True,
            )
            sent += 1
        return sent


@dataclass(frozen=True)
class OutboxMessage:
    name: str
    to: str
    subject: str
    date: str
    body: str


def outbox_messages(*, limit: int = OUTBOX_LIMIT) -> list[OutboxMessage]:
    """The newest messages kept by OutboxBackend, newest first."""
    folder = outbox_dir()
    if not folder.is_dir():
        return []
    found = sorted(folder.glob("*.eml"), reverse=True)[:limit]
    messages = []
    for path in found:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, ParsedMessage)
        part = parsed.get_body(preferencelist=("plain", "html"))
        messages.append(
            OutboxMessage(
                name=path.stem,
                to=str(parsed["To"] or ""),
                subject=str(parsed["Subject"] or ""),
                date=str(parsed["Date"] or ""),
                body=part.get_content() if part is not None else "",
            )
        )
    return messages
