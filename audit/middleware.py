"""The address of the request being served, for the audit events its services record.

Services take the person who acts, not the request (commands and workers call them too): the
address reaches audit.services.audit_record through a context variable that this middleware
sets for the request's duration. A command or a worker has none, and records none."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

from mokudash.client_ip import client_ip

request_address: ContextVar[str | None] = ContextVar("audit_request_address", default=None)


def request_address_kept(get_response: Callable[[HttpRequest], HttpResponse]):
    def middleware(request: HttpRequest) -> HttpResponse:
        token = request_address.set(client_ip(request))
        try:
            return get_response(request)
        finally:
            request_address.reset(token)

    return middleware
