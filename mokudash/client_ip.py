"""Who a request comes from, as django-axes counts failed logins: the address and the name."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The person's address: REMOTE_ADDR, or behind DJANGO_TRUSTED_PROXY_COUNT proxies, the
    address the first of them saw (AXES_CLIENT_IP_CALLABLE).

    Each proxy appends to X-Forwarded-For the address that called it, so with N proxies the
    N-th entry from the right is the client's. Whatever stands left of it, the client wrote
    itself: it is never believed, or a forged header would escape the lock-out. A request
    with fewer entries did not come through every proxy, and an entry that is no address is
    no proxy's: then REMOTE_ADDR is all that is known.

    Not django-ipware (which django-axes would use): its proxy count is of the proxies named
    in the header, one fewer than stand in front, and it ranks the addresses it finds in the
    headers and REMOTE_ADDR, a public one first: behind a proxy with a public address, an
    intranet's clients would all share the proxy's lock.
    """
    remote = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if len(hops) < count:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-count]))
    except ValueError:
        return remote


def login_name(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The name a lock-out counts failures by (AXES_USERNAME_CALLABLE): what the person typed
    in the login form's "login" field, a username or an email address, as typed but for case
    and spaces, so that "Alice" and "alice " share one count. allauth hands the backends
    `username=` or `email=`, not the form's field, so the form is read first."""
    typed = request.POST.get("login") if request.method == "POST" else None
    if not typed and credentials:
        typed = credentials.get("username") or credentials.get("email")
    return typed.strip().lower() if typed else None
