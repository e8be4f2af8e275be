"""Writing to the audit trail: the one function every sensitive act calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from audit.middleware import request_address
from audit.models import AuditEvent, Kind
from mokudash.client_ip import client_ip

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.http import HttpRequest

    from campaigns.models import Campaign

# Keys a detail may never carry, at any depth: the trail holds what happened, never a secret.
_SECRET_WORDS = (
    "passcode",
    "password",
    "secret",
    "token",
    "api_key",
    "recovery_code",
    "otp",
    "session_key",
    "cookie",
)


class SecretInAuditDetail(ValueError):
    """A detail named a field that would hold a secret. A bug in the caller, never data."""


def _check_no_secret(detail: Any, path: str = "detail") -> None:
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            name = str(key).lower()
            if any(word in name for word in _SECRET_WORDS):
                raise SecretInAuditDetail(f"{path}[{key!r}] may hold a secret")
            _check_no_secret(value, f"{path}[{key!r}]")
    elif isinstance(detail, list | tuple):
        for value in detail:
            _check_no_secret(value, path)


def audit_record(
    *,
    kind: Kind,
    actor: User | AnonymousUser | None = None,
    actor_name: str = "",
    request: HttpRequest | None = None,
    person: User | None = None,
    campaign: Campaign | None = None,
    batch_pk: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Record one act. Call it in the same transaction as the act, so that the two commit or
    roll back together. `actor` None (or anonymous) is the system, or someone not signed in
    (a failed sign-in names what was typed in `actor_name`). The address comes from the
    request, as the lock-out reads it (mokudash.client_ip), or without one from the request
    being served (audit.middleware)."""
    detail = dict(detail or {})
    _check_no_secret(detail)
    user = actor if actor is not None and actor.is_authenticated else None
    if user is not None and not actor_name:
        actor_name = user.get_username()
    return AuditEvent.objects.create(
        kind=kind,
        actor=user,
        actor_name=actor_name[:254],
        ip_address=client_ip(request) if request is not None else request_address.get(),
        person=person,
        campaign=campaign,
        batch_pk=batch_pk,
        detail=detail,
    )
