"""The webhooks' HTTP client: the only module of webhooks/ that speaks HTTP.

A second client beside the Mokugift one (rewards/mokugift/http.py), on purpose: that one talks to
one trusted API with its session, deadlines and error hierarchy; this one posts to addresses
that admins typed in, and must never follow them into the network behind the server. It uses
urllib3 (what requests is made of) directly, because it must connect to the very address that
`webhook_url_check` approved: the pool is opened on the checked IP, with the Host header and the
TLS server name (SNI and certificate check) kept as the URL's host. A name that resolves to a
public address at the check and to 127.0.0.1 a moment later (DNS rebinding) is never resolved a
second time, so it cannot slip through.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

# The most of an answer we read: receivers say "ok"; an endless body stops here.
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class PostResult:
    status_code: int | None
    duration_ms: int
    error: str
    body: bytes


def webhook_post(
    *, url: str, address: str, body: bytes, headers: dict[str, str], timeout: tuple[float, float]
) -> PostResult:
    """POST `body` to `url`, connected to `address` (the IP `webhook_url_check` approved).
    Never raises for the network: the error is in the result. No redirect is followed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    default_port = port == (443 if parts.scheme == "https" else 80)
    host_header = host if default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if default_port else f"[{host}]:{port}"
    pool_kwargs: dict = {
        "timeout": urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        "retries": False,
        "maxsize": 1,
    }
    if parts.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address,
            port,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            **pool_kwargs,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, **pool_kwargs)
    started = time.monotonic()
    status: int | None = None
    error = ""
    answer = b""
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        status = response.status
        try:
            answer = response.read(MAX_ANSWER_BYTES)
        finally:
            # Not drained: an endless body is cut off here, its connection thrown away.
            response.close()
    except urllib3.exceptions.HTTPError as failure:
        error = f"{type(failure).__name__}: {failure}"[:500]
    finally:
        pool.close()
    duration_ms = int((time.monotonic() - started) * 1000)
    return PostResult(status_code=status, duration_ms=duration_ms, error=error, body=answer)
