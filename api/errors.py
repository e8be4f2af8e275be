"""Every error of the API in one shape: `application/problem+json` (RFC 9457).

    {"type": "https://mokudash.org/problems/invalid", "title": "The request is not valid",
     "status": 422, "detail": "recipients[2].recipient: “x” is not a valid email address.",
     "errors": [{"field": "recipients[2].recipient", "message": "…"}]}

`type` is one of PROBLEMS, `detail` is a sentence a person can act on, `errors` names each
field (a path into the body, the query or a header) that is wrong. Each exception a service or
Django raises is turned into its problem here, and nowhere else; an exception this does not
know is a 500 with no detail (its traceback goes to the log, never to the client).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as RequestInvalid

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://mokudash.org/problems/"

# Each problem type: its HTTP status and its title. One list, for the code and the document.
PROBLEMS: dict[str, tuple[int, str]] = {
    "unauthenticated": (401, "No valid API key"),
    "forbidden": (403, "Not allowed"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "This path does not answer this method"),
    "conflict": (409, "The request conflicts with the state of the resource"),
    "too-large": (413, "The request body is too large"),
    "invalid": (422, "The request is not valid"),
    "idempotency-key-reused": (422, "This Idempotency-Key was used for another request"),
    "rate-limited": (429, "Too many requests"),
    "server-error": (500, "Something went wrong on our side"),
}


class FieldError(Schema):
    field: str
    message: str


class Problem(Schema):
    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []


class ApiProblem(Exception):
    """Raised anywhere in an operation to answer with this problem."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        errors: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def problem_body(kind: str, detail: str, errors: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    status, title = PROBLEMS[kind]
    return {
        "type": TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": [{"field": field, "message": message} for field, message in errors],
    }


def problem_response(
    kind: str,
    detail: str,
    *,
    errors: Sequence[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    body = problem_body(kind, detail, errors)
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False), status=body["status"], content_type=CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def field_path(location: Sequence[str | int]) -> str:
    """pydantic's ("body", "payload", "recipients", 2, "recipient") -> "recipients[2].recipient";
    a query parameter or a header is named as it is sent."""
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts.pop(0)
        if where == "body" and parts and parts[0] == "payload":
            parts.pop(0)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _invalid_detail(errors: Sequence[tuple[str, str]]) -> str:
    first = f"{errors[0][0]}: {errors[0][1]}"
    more = len(errors) - 1
    return first if not more else f"{first} (and {more} more problem{'s' if more > 1 else ''})"


def invalid(errors: Sequence[tuple[str, str]]) -> ApiProblem:
    """422 naming every field that is wrong, the first one in the detail."""
    return ApiProblem("invalid", _invalid_detail(errors), errors=errors)


def _request_invalid(request: HttpRequest, exc: RequestInvalid) -> HttpResponse:
    errors = []
    for error in exc.errors:
        message = str(error.get("msg", "Not valid"))
        if error.get("type") == "json_invalid":
            message = "The body is not valid JSON."
        # pydantic's "Value error, …" prefix says nothing to a person.
        errors.append((field_path(error.get("loc", ())), message.removeprefix("Value error, ")))
    return problem_response("invalid", _invalid_detail(errors), errors=errors)


def handlers() -> dict[type[Exception], Any]:
    """The exception handlers of the NinjaAPI (api/routes/__init__.py)."""

    def api_problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
        return problem_response(exc.kind, exc.detail, errors=exc.errors, headers=exc.headers)

    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        messages = exc.messages
        errors = []
        if hasattr(exc, "error_dict"):
            for field, field_errors in exc.message_dict.items():
                errors += [(field, message) for message in field_errors]
        return problem_response("invalid", " ".join(messages), errors=errors)

    def permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return problem_response("forbidden", str(exc) or "Your key may not do this.")

    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return problem_response("not-found", str(exc) or "No such thing, or not one of yours.")

    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return problem_response(
            "unauthenticated",
            "Send a live API key as 'Authorization: Bearer mkd_…'. The key given is missing, "
            "unknown, revoked or expired, or its person is deactivated.",
            headers={"WWW-Authenticate": 'Bearer realm="mokudash"'},
        )

    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        if str(exc).startswith("Cannot parse request body"):
            return problem_response(
                "invalid",
                "The body is not valid JSON.",
                errors=[("body", "The body is not valid JSON.")],
            )
        kind = {401: "unauthenticated", 403: "forbidden", 404: "not-found", 429: "rate-limited"}
        return problem_response(kind.get(exc.status_code, "invalid"), str(exc))

    def server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
        # The traceback to the log; to the client, only that it happened.
        logger.exception("API %s %s failed", request.method, request.path)
        return problem_response(
            "server-error", "The request failed on our side; it is in the server's log."
        )

    return {
        ApiProblem: api_problem,
        RequestInvalid: _request_invalid,
        ValidationError: validation_error,
        PermissionDenied: permission_denied,
        Http404: not_found,
        AuthenticationError: unauthenticated,
        HttpError: http_error,
        Exception: server_error,
    }
