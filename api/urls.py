"""/api/v1/: the NinjaAPI's URLs, each behind the door every API request goes through."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from api.errors import problem_response
from api.routes import api


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB".replace(".0 MB", " MB")


def api_door(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """No session, no login page (a key signs each request: the login middleware lets it
    through), and a body read only up to API_MAX_BODY_BYTES: a larger one is a 413 that says
    the limit, before any of it is parsed."""

    @wraps(view)
    def door(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        limit = settings.API_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return _too_large(declared, limit)
        if request.method in ("POST", "PUT", "PATCH"):
            # Read here, bounded, so that Django's own smaller upload limit (meant for forms)
            # does not answer a 400 page; what is read is the body the operation parses.
            body = request.read(limit + 1)
            if len(body) > limit:
                return _too_large(len(body), limit)
            request._body = body
        return view(request, *args, **kwargs)

    door.login_required = False  # type: ignore[attr-defined]
    return door


def _too_large(size: int, limit: int) -> HttpResponse:
    return problem_response(
        "too-large",
        f"The body is {'more than ' if size > limit else ''}{_megabytes(size)}; the API reads "
        f"at most {_megabytes(limit)}. Send fewer recipients per batch (at most 50,000).",
    )


def _guarded(patterns: list) -> list:
    guarded = []
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = api_door(pattern.callback)
        guarded.append(pattern)
    return guarded


app_urls, _, namespace = api.urls
urlpatterns = [path("", (_guarded(app_urls), "ninja", namespace))]
