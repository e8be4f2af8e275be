"""Who is asking: `Authorization: Bearer mkd_…` turned into its key and its person, the key's
scopes checked per operation, and its requests counted against the rate limit."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from ninja.security import HttpBearer

from api.errors import ApiProblem
from api.models import ApiKey
from api.services import api_key_authenticate

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ApiKeyAuth(HttpBearer):
    """The key's person becomes `request.user`, so that every service and selector applies
    their role and their campaigns, exactly as on the pages: a key can do no more."""

    def __call__(self, request: HttpRequest) -> Any:
        # ninja's own __call__ logs an unexpected Authorization header whole in DEBUG (a key
        # sent as "Token mkd_…" would land in the log): read it here, log nothing.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        api_key = api_key_authenticate(secret=token)
        if api_key is None:
            return None
        _rate_check(api_key)
        request.user = api_key.user
        return api_key


def _rate_check(api_key: ApiKey) -> None:
    """A fixed window of one minute per key, counted in the cache (Redis in production, so
    shared by every web server). Over the limit: 429 with the seconds to the next window."""
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return
    now = time.time()
    window = int(now // 60)
    key = f"api-rate:{api_key.pk}:{window}"
    cache.add(key, 0, timeout=120)
    try:
        used = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=120)
        used = 1
    if used > limit:
        wait = max(1, math.ceil((window + 1) * 60 - now))
        raise ApiProblem(
            "rate-limited",
            f"This key made more than {limit} requests this minute; try again in {wait} s.",
            headers={"Retry-After": str(wait)},
        )


def person(request: HttpRequest) -> User:
    """The key's person (ApiKeyAuth set it): every operation runs behind the key."""
    return cast("User", request.user)


def scope_require(request: HttpRequest, scope: str) -> None:
    """403 unless the request's key has this scope."""
    api_key: ApiKey = request.auth  # type: ignore[attr-defined]
    scope = str(getattr(scope, "value", scope))  # a Scope member says "Scope.SEND" in a repr
    if scope not in api_key.scopes:
        raise ApiProblem(
            "forbidden",
            f"This key lacks the {scope!r} scope; it has {', '.join(api_key.scopes) or 'none'}. "
            "Make a key with it on your API keys page.",
        )


def permission_require(request: HttpRequest, permission: str, doing: str) -> None:
    """403 unless the key's person has this permission (their role): as the pages do."""
    if not request.user.has_perm(permission):
        raise ApiProblem("forbidden", f"Your role may not {doing}.")
