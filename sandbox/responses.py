"""What the sandbox sends back: the API's XML, and the two ways of sending nothing.

The XML is written by hand, element by element in the order of the document, so that the
sandbox is strict in what it sends and a large query answer can be streamed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from collections.abc import Iterable, Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from sandbox.services import ERROR_DESCRIPTIONS, CreateOutcome, Recipient

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/xml; charset=utf-8"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
# Rewards per chunk written to the socket while streaming.
STREAM_CHUNK = 1000

# Characters XML 1.0 cannot carry at all; an echoed recipient item may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


_PLAIN = re.compile(r"[^&<>\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]*")


def _text(value: object) -> str:
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text  # the common case, one scan: nothing to escape or replace
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _NOT_XML.sub("\ufffd", text)


def _el(tag: str, value: object) -> str:
    return f"<{tag}>{_text(value)}</{tag}>"


def _xml(body: str) -> HttpResponse:
    return HttpResponse(
        f"{XML_DECLARATION}<result>{_el('version', '1.0')}{body}</result>\n",
        content_type=CONTENT_TYPE,
    )


def _error(code: int) -> str:
    return f"<error>{_el('code', code)}{_el('description', ERROR_DESCRIPTIONS[code])}</error>"


def _unsent_code(item: Recipient) -> int:
    """The error code of an item no reward was made for: every one of them has one."""
    if item.error is None:
        raise ValueError(f"the unsent item {item.given!r} has no error code")
    return item.error


def xml_failed(code: int, *, transaction_id: str | None = None) -> HttpResponse:
    """status Failed with an error; a create call that got as far as a transaction names it."""
    transaction = _el("transaction_id", transaction_id) if transaction_id else ""
    return _xml(f"{_el('status', 'Failed')}{transaction}{_error(code)}")


def _reward(reward, *, by_id: bool, with_url: bool) -> str:
    recipient = (
        _el("recipient_id", reward.recipient_id)
        if by_id
        else _el("recipient_email", reward.recipient_email)
    )
    url = _el("url", reward.url) if with_url else ""
    return f"<reward>{_el('id', reward.remote_id)}{recipient}{url}</reward>"


def xml_single_created(outcome: CreateOutcome, *, by_id: bool, with_url: bool) -> HttpResponse:
    if not outcome.made:
        return xml_failed(_unsent_code(outcome.unsent[0]), transaction_id=outcome.transaction_id)
    return _xml(
        f"{_el('status', 'Success')}{_el('transaction_id', outcome.transaction_id)}"
        f"{_reward(outcome.made[0], by_id=by_id, with_url=with_url)}"
    )


def xml_multi_created(outcome: CreateOutcome, *, by_id: bool, with_url: bool) -> HttpResponse:
    """Success (all made), Part_Failed (some), or Failed (none: the error is the first item's)."""
    if not outcome.unsent:
        status = "Success"
    elif outcome.made:
        status = "Part_Failed"
    else:
        status = "Failed"
    parts = [_el("status", status), _el("transaction_id", outcome.transaction_id)]
    if outcome.made:
        parts.append("<rewards>")
        parts.extend(_reward(r, by_id=by_id, with_url=with_url) for r in outcome.made)
        parts.append("</rewards>")
    if outcome.unsent:
        parts.append("<unsent_rewards>")
        parts.extend(
            f"<unsent_reward>{_el('recipient', r.given)}{_error(_unsent_code(r))}</unsent_reward>"
            for r in outcome.unsent
        )
        parts.append("</unsent_rewards>")
    if status == "Failed":
        parts.append(_error(_unsent_code(outcome.unsent[0])))
    return _xml("".join(parts))


def _query_chunks(rows: Iterable[tuple[str, str, str, str, int]]) -> Iterator[str]:
    """The answer, from `sandbox_rewards_rows` (its dates are text, in UTC)."""
    # The summary is counted while the rewards go out, so it always matches them, and comes
    # after them (the order of the document), so nothing has to be counted twice.
    yield f"{XML_DECLARATION}<result>{_el('version', '1.0')}{_el('status', 'Success')}<rewards>"
    reward_count = tree_count = 0
    chunk = []
    for remote_id, email, recipient_id, created, trees in rows:
        recipient = _el("recipient_email", email) if email else _el("recipient_id", recipient_id)
        chunk.append(
            f"<reward>{_el('id', remote_id)}{recipient}"
            f"<date>{created}</date><tree_count>{trees}</tree_count></reward>\n"
        )
        reward_count += 1
        tree_count += trees
        if len(chunk) >= STREAM_CHUNK:
            yield "".join(chunk)
            chunk.clear()
    chunk.append(
        f"</rewards><summary>{_el('reward_count', reward_count)}"
        f"{_el('tree_count', tree_count)}</summary></result>\n"
    )
    yield "".join(chunk)


def xml_query_stream(rows: Iterable[tuple[str, str, str, str, int]]) -> StreamingHttpResponse:
    return StreamingHttpResponse(_query_chunks(rows), content_type=CONTENT_TYPE)


# --- Sending nothing ----------------------------------------------------------------------


def http_500() -> HttpResponse:
    response = HttpResponse("Internal Server Error", status=500, content_type="text/plain")
    # A fault asked for, not a bug: keep it out of Django's error log (the view logs it).
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own private flag
    return response


def _client_socket(request: HttpRequest) -> socket.socket | None:
    """The TCP socket of this request, under gunicorn or Django's own (wsgiref) server.

    wsgiref gives no handle on it; under runserver and live_server the chain is
    wsgi.input (a LimitedStream whose _read is the handler's rfile.read) -> rfile (a
    BufferedReader) -> raw (a SocketIO) -> _sock. An ASGI request has no WSGI environ at all.
    """
    environ: dict[str, object] = getattr(request, "environ", {})
    found = environ.get("gunicorn.socket")
    if isinstance(found, socket.socket):
        return found
    seen: set[int] = set()
    todo = [environ.get("wsgi.input")]
    while todo:
        obj = todo.pop()
        if obj is None or id(obj) in seen or len(seen) > 20:
            continue
        seen.add(id(obj))
        if isinstance(obj, socket.socket):
            return obj
        for name in ("_sock", "raw", "stream", "_stream", "rfile", "_read", "__self__"):
            todo.append(getattr(obj, name, None))
    return None


def connection_drop(request: HttpRequest) -> HttpResponse:
    """Close the client's connection without a byte of answer.

    The server then writes the (empty) response to a dead socket: the write fails with a
    broken pipe, which wsgiref and gunicorn both take as a client that went away. Where no
    socket can be found, an HTTP 500 is the nearest honest failure.
    """
    sock = _client_socket(request)
    if sock is None:
        logger.warning("sandbox: cannot drop the connection under this server; answering 500")
        return http_500()
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    return HttpResponse(b"", content_type="text/plain")
