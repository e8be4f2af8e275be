"""`Idempotency-Key` on every POST, with Stripe's semantics.

- The same key with the same body answers the first answer again, status and body, with
  `Idempotent-Replayed: true`.
- The same key with another body (or for another call) is refused: 422.
- Two requests with one key at the same moment do the work once. The key's row is written,
  unique per person, and committed *before* the work; the second request's insert fails on the
  constraint, and it waits for the first answer (409 if that takes too long: try again).
- A request whose work failed on our side (a 500) leaves no answer: the key may be retried.
  A process that died mid-work leaves a row without an answer; after STALE it is taken over by
  the next request with the key, which is safe because the work itself is idempotent too: the
  batch carries the key (`batch_idempotency_key`), so batch_create finds the batch the dead
  request wrote instead of writing a second one.
- Keys are kept API_IDEMPOTENCY_HOURS (at least 24), then purged (api.tasks).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from pydantic import BaseModel

from api.auth import person
from api.errors import ApiProblem, handlers, problem_response
from api.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# How long a second request waits for the first one's answer, polling, before a 409.
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.05
# A key's row without an answer this old belongs to a request that died: taken over.
STALE = dt.timedelta(minutes=2)
JSON = "application/json"

Answer = tuple[int, Any]


def batch_idempotency_key(*, user_pk: int, key: str) -> str:
    """The key a batch made through the API carries (Batch.idempotency_key, 64 characters,
    unique): the person's key hashed, so that two people's equal keys are two batches."""
    return "api-" + hashlib.sha256(f"{user_pk}:{key}".encode()).hexdigest()[:60]


def body_hash(body: bytes) -> str:
    """The same JSON is the same body, whatever its spacing or key order."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return hashlib.sha256(body).hexdigest()
    return hashlib.sha256(canonical.encode()).hexdigest()


def _render(status: int, data: Any) -> HttpResponse:
    if isinstance(data, HttpResponse):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return HttpResponse(
        json.dumps(data, ensure_ascii=False), status=status, content_type=JSON + "; charset=utf-8"
    )


_KNOWN = (ApiProblem, ValidationError, PermissionDenied, Http404)


def _answer(run: Callable[[], Answer], request: HttpRequest) -> HttpResponse:
    """The operation's answer as a response, its known refusals turned into problems here (so
    that they are kept and replayed like any answer); anything else goes up, as a 500."""
    try:
        return _render(*run())
    except _KNOWN as error:
        for kind, handler in handlers().items():
            if isinstance(error, kind):
                return handler(request, error)
        raise


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        bytes(record.body), status=record.status or 200, content_type=record.content_type
    )
    response["Idempotent-Replayed"] = "true"
    return response


def _refused_reuse(record: IdempotencyRecord) -> HttpResponse:
    return problem_response(
        "idempotency-key-reused",
        f"This Idempotency-Key was first used at {record.created_at:%Y-%m-%d %H:%M:%S} UTC for "
        f"{record.method} {record.path} with another body. Use a new key for a new request; "
        "send the same body to read the first answer again.",
        errors=[(HEADER, "Used before for another request.")],
    )


def idempotent(request: HttpRequest, *, run: Callable[[], Answer]) -> HttpResponse:
    """Answer `run()`, once per Idempotency-Key (none given: every time)."""
    key = request.headers.get(HEADER, "").strip()
    if not key:
        return _answer(run, request)
    if len(key) > MAX_KEY_LENGTH:
        raise ApiProblem(
            "invalid",
            f"The {HEADER} is longer than {MAX_KEY_LENGTH} characters.",
            errors=[(HEADER, f"At most {MAX_KEY_LENGTH} characters.")],
        )
    user = person(request)
    digest = body_hash(request.body)
    now = timezone.now()
    kept = dt.timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    # A key past its window is new again (the purge may not have run yet).
    IdempotencyRecord.objects.filter(user=user, key=key, created_at__lt=now - kept).delete()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                user=user,
                key=key,
                method=request.method or "",
                path=request.path[:500],
                body_hash=digest,
                created_at=now,
            )
    except IntegrityError:
        record = _first(request, key=key, digest=digest)
        if isinstance(record, HttpResponse):
            return record
    try:
        response = _answer(run, request)
    except BaseException:
        # Our failure: no answer to keep, and the key may be tried again at once.
        IdempotencyRecord.objects.filter(pk=record.pk, status__isnull=True).delete()
        raise
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        status=response.status_code,
        content_type=response["Content-Type"],
        body=response.content,
    )
    return response


def _first(request: HttpRequest, *, key: str, digest: str) -> IdempotencyRecord | HttpResponse:
    """The key is taken: the first answer (replayed), a refusal, or the record to work under
    when the first request died."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        record = IdempotencyRecord.objects.filter(user=person(request), key=key).first()
        if record is None:
            # The first request failed and let its key go: try again, from the start.
            return problem_response(
                "conflict",
                f"A request with this {HEADER} failed on our side just now; send it again.",
                headers={"Retry-After": "1"},
            )
        if (record.method, record.path, record.body_hash) != (
            request.method,
            request.path[:500],
            digest,
        ):
            return _refused_reuse(record)
        if record.status is not None:
            return _replay(record)
        # A request that wrote it and died before answering: this one does the work. A
        # conditional UPDATE, so that of two late requests only one takes it over.
        if record.created_at < timezone.now() - STALE and IdempotencyRecord.objects.filter(
            pk=record.pk, status__isnull=True, created_at=record.created_at
        ).update(created_at=timezone.now()):
            return record
        if time.monotonic() > deadline:
            return problem_response(
                "conflict",
                f"A request with this {HEADER} is still being worked on; ask again in a moment "
                "to read its answer.",
                headers={"Retry-After": "2"},
            )
        time.sleep(POLL_SECONDS)
