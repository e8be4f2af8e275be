"""/api/v1/: the NinjaAPI's URLs, each behind the door every API request goes through. The
pages where a person makes and revokes their keys are ordinary pages: api/page_urls.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import wraps
from itertools import islice
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, path, re_path

from api.errors import invalid, problem_response
from api.routes import api


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB".replace(".0 MB", " MB")


def api_door(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """No session, no login page (a key signs each request: the login middleware lets it
    through), a body read only up to API_MAX_BODY_BYTES: a larger one is a 413 that says
    the limit, before any of it is parsed; no NUL character anywhere (see nul_fields); and
    a method the path does not answer is a 405 problem like any other error."""

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
        fields = list(islice(nul_fields(request, kwargs), MAX_NAMED))
        if fields:
            problem = invalid([(field, NUL_MESSAGE) for field in fields])
            return problem_response(problem.kind, problem.detail, errors=problem.errors)
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            # django-ninja's own, a text/html "Method not allowed": an error like any other.
            allowed = response["Allow"]
            return problem_response(
                "method-not-allowed",
                f"{request.path} answers {allowed}, not {request.method}.",
                headers={"Allow": allowed},
            )
        return response

    door.login_required = False  # type: ignore[attr-defined]
    return door


# At most this many fields are named (as a batch's row problems: 50,000 rows could each have one).
MAX_NAMED = 1000
NUL_MESSAGE = "Holds the character U+0000 (NUL), which cannot be stored: remove it."


def nul_fields(request: HttpRequest, path_values: dict[str, Any]) -> Iterator[str]:
    """The fields of a request that hold U+0000: a path part, a query parameter, a header or
    a string anywhere in a JSON body, named as a 422 names them (recipients[2].name).

    PostgreSQL's text cannot hold it (a query or a write with one fails, a 500), and no field
    of ours has a use for it: refused here, once for every operation, before any is run."""
    for name, value in path_values.items():
        if "\x00" in str(value):
            yield name
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            yield _printable(name)
    for name, value in request.headers.items():
        if "\x00" in value:
            yield name
    # JSON spells it \u0000 (a raw NUL byte is not JSON: the parser refuses that body).
    body = getattr(request, "_body", b"")
    if b"\\u0000" in body:
        try:
            document = json.loads(body)
        except ValueError:
            return  # not JSON: the operation says so, naming the body
        yield from _json_nul_fields(document, "")


def _json_nul_fields(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if "\x00" in value:
            yield path or "body"
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_nul_fields(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{_printable(key)}" if path else _printable(key)
            if "\x00" in key:
                yield name
            else:
                yield from _json_nul_fields(item, name)


def _printable(name: str) -> str:
    return name.replace("\x00", "\\u0000")


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


def unknown(request: HttpRequest) -> HttpResponse:
    """Any other path under /api/v1/: a 404 problem, not the dashboard's HTML page."""
    return problem_response(
        "not-found", f"The API has no {request.path}: its operations are listed at /api/v1/docs."
    )


app_urls, _, namespace = api.urls
# Last: every path that no operation has.
catch_all = re_path(r"^.*$", unknown, name="unknown")
urlpatterns = [path("", (_guarded([*app_urls, catch_all]), "ninja", namespace))]
