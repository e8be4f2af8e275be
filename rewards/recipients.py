"""What Mokugift's `recipient_list` can carry: the one rule the upload preview, the send forms,
the command and the client all apply, so that a row the preview passes is a row the send takes.

`recipient_list` is "Full Name <address>, ...": a comma ends an item and angle brackets delimit
the address, so an address, an ID or a name holding one cannot be expressed; nor can a control
character, nor a blank inside an address or an ID. The protocol says refuse, never mangle.
A quoted address such as `"<img/src=x>"@example.com` is valid by RFC 5322 (Django's
EmailValidator passes it) and still cannot be carried: only this rule says so.

Plain Python on purpose: the client imports it, and it needs neither Django nor a model.
"""

from __future__ import annotations

import re

_NAME_UNCARRIABLE = re.compile(r"[,<>\x00-\x1f\x7f]")
_RECIPIENT_UNCARRIABLE = re.compile(r"[,<>\s\x00-\x1f\x7f]")

_CALLED = {
    " ": "a space",
    ",": "a comma",
    "<": "“<”",
    ">": "“>”",
    "\t": "a tab",
    "\n": "a line break",
    "\r": "a line break",
}


def recipient_key(*, recipient: str, by_id: bool) -> str:
    """How two mentions of one recipient compare: our own recipient IDs exactly, addresses
    without the blanks around them and without case (Mokugift may echo them in another case)."""
    return recipient if by_id else recipient.strip().lower()


def recipient_refusal(*, recipient: str, by_id: bool) -> str | None:
    """Why `recipient_list` cannot carry this address (or ID), or None when it can.

    `recipient` is the value as it will be sent: blanks around it already stripped.
    """
    what = "recipient ID" if by_id else "email address"
    if not recipient:
        return f"The {what} is missing."
    bad = _RECIPIENT_UNCARRIABLE.search(recipient)
    if bad:
        return (
            f"The {what} holds {_called(bad.group())}, which Mokugift's recipient list "
            "cannot carry."
        )
    return None


def name_refusal(*, name: str) -> str | None:
    """Why `recipient_list` cannot carry this name, or None when it can (an empty name can)."""
    bad = _NAME_UNCARRIABLE.search(name)
    if bad:
        return (
            f"The name holds {_called(bad.group())}, which Mokugift's recipient list cannot "
            "carry: remove it."
        )
    return None


def _called(char: str) -> str:
    return _CALLED.get(char) or f"the character U+{ord(char):04X}"
