"""API keys: made, revoked, and turned back into their person at each request."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from api.models import ApiKey, Scope
from audit.models import Kind
from audit.services import audit_record

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Every key starts so: a leaked one is found by secret scanners, and told from a session.
KEY_PREFIX = "mkd_"
# A key's last-used time is written at most this often, not at every request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
MAX_EXPIRY_DAYS = 3650


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def scopes_parse(value: str | Iterable[str]) -> list[str]:
    """`send,read` or ["send", "read"] -> the scopes in their canonical order; a name that is
    no scope is a ValidationError naming it and the scopes there are."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in Scope.values]
    if unknown:
        raise ValidationError(
            f"Unknown scope {unknown[0]!r}: the scopes are {', '.join(Scope.values)}."
        )
    if not names:
        raise ValidationError(f"A key needs at least one scope: {', '.join(Scope.values)}.")
    return [scope for scope in Scope.values if scope in names]


@dataclass(frozen=True)
class NewKey:
    api_key: ApiKey
    # The key itself, to show once: it is not kept.
    secret: str


def api_key_create(
    *,
    user: User,
    name: str,
    scopes: str | Iterable[str],
    expires_days: int | None = None,
    actor: User | None = None,
) -> NewKey:
    name = name.strip()
    if not name:
        raise ValidationError("A key needs a name, to tell it from the others.")
    if len(name) > 100:
        raise ValidationError("The name is longer than 100 characters.")
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise ValidationError(f"A key expires after 1 to {MAX_EXPIRY_DAYS} days.")
    if not user.is_active:
        raise ValidationError(f"{user.username} is deactivated: no key can be made for them.")
    parsed = scopes_parse(scopes)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            user=user,
            name=name,
            prefix=secret[: len(KEY_PREFIX) + 6],
            key_hash=_hash(secret),
            scopes=parsed,
            created_at=now,
            expires_at=now + dt.timedelta(days=expires_days) if expires_days else None,
        )
        audit_record(
            kind=Kind.API_KEY_CREATED,
            actor=actor or user,
            detail={
                "key": api_key.prefix,
                "name": name,
                "for": user.username,
                "scopes": parsed,
                "expires": api_key.expires_at.isoformat() if api_key.expires_at else None,
            },
        )
    return NewKey(api_key=api_key, secret=secret)


def api_key_revoke(*, api_key: ApiKey, actor: User | None) -> bool:
    """Revoked at once: the next request with it is refused. False if it already was."""
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            audit_record(
                kind=Kind.API_KEY_REVOKED,
                actor=actor,
                detail={"key": api_key.prefix, "name": api_key.name},
            )
    return bool(revoked)


def api_key_authenticate(*, secret: str) -> ApiKey | None:
    """The live key for this secret, with its person, or None: unknown, revoked, expired, or
    its person deactivated. Marks it used (at most once a minute)."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    api_key = ApiKey.objects.select_related("user").filter(key_hash=_hash(secret)).first()
    now = timezone.now()
    if api_key is None or not api_key.alive(now) or not api_key.user.is_active:
        return None
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
