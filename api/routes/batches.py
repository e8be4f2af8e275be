"""Batches: create (one recipient or up to 50,000), read, rows, results, cancel, retry the
failed, approve, decline. The same services as the pages, with the same rules: the person's
role and campaigns, approvals, budgets and schedules."""

from __future__ import annotations

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Query, Router, Status

from api.auth import permission_require, person, scope_require
from api.errors import ApiProblem, invalid
from api.idempotency import batch_idempotency_key, idempotent
from api.models import Scope
from api.routes.lookups import batch_find, campaign_find
from api.routes.openapi import CSV, ERRORS, POST_ERRORS, idempotency_header
from api.schemas import BatchIn, BatchOut, DeclineIn, RowOut, RowPage
from campaigns.selectors import APPROVE_PERMISSION
from rewards.models import Batch, Send
from rewards.recipients import recipient_key
from rewards.selectors.sending import batch_counts, batch_failure_reasons
from rewards.services import controls, sending
from rewards.services.controls import TOO_FAR_AHEAD, send_at_too_far
from rewards.services.csv_import import name_problem, recipient_problem
from rewards.services.export import LINK_NOT_RECOVERED, batch_results_csv, export_record
from rewards.services.sending import RecipientRow

router = Router(tags=["batches"])

SEND_PERMISSION = "campaigns.send_rewards"
# At most this many row problems are listed in one answer (the detail says how many in all).
MAX_ROW_PROBLEMS = 1000


def batch_out(batch: Batch) -> BatchOut:
    counts = batch_counts(batch=batch)
    return BatchOut(
        id=batch.pk,
        state=batch.state,  # type: ignore[arg-type]
        campaign=batch.campaign.campaign_id,
        campaign_name=batch.campaign.name,
        mode=batch.mode,  # type: ignore[arg-type]
        source=batch.source,
        created_by=batch.created_by.get_username() if batch.created_by else None,
        created_at=batch.created_at,
        send_at=batch.send_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        paused_reason=batch.paused_reason,
        total=sum(counts.values()),
        counts=counts,  # type: ignore[arg-type]
        failures=[
            {"reason": reason.reason, "rows": reason.count}  # type: ignore[misc]
            for reason in batch_failure_reasons(batch=batch)
        ],
        approval={  # type: ignore[arg-type]
            "needed": batch.approval_needed,
            "decided_by": batch.decided_by.get_username() if batch.decided_by else None,
            "decided_at": batch.decided_at,
            "decline_reason": batch.decline_reason,
        },
    )


def recipient_rows(payload: BatchIn) -> list[RecipientRow]:
    """The recipients as ledger rows, each checked as an upload's row is; any problem refuses
    the whole request (nothing is half done), naming each row: recipients[3].recipient."""
    by_id = payload.mode == "link-id"
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    rows = []
    for index, item in enumerate(payload.recipients):
        recipient, name = item.recipient.strip(), item.name.strip()
        problem = recipient_problem(mode=payload.mode, recipient=recipient)
        if problem:
            problems.append((f"recipients[{index}].recipient", problem[1]))
        else:
            key = recipient_key(recipient=recipient, by_id=by_id)
            if key in seen:
                problems.append(
                    (
                        f"recipients[{index}].recipient",
                        f"The same recipient as recipients[{seen[key]}]: one reward each.",
                    )
                )
            seen.setdefault(key, index)
        problem = name_problem(name=name)
        if problem:
            problems.append((f"recipients[{index}].name", problem[1]))
        rows.append(RecipientRow(row_number=index + 1, recipient=recipient, name=name))
    if problems:
        error = invalid(problems[:MAX_ROW_PROBLEMS])
        if len(problems) > MAX_ROW_PROBLEMS:
            error.detail += f" {len(problems)} problems in all; the first {MAX_ROW_PROBLEMS} named."
        raise error
    return rows


@router.post(
    "/batches",
    response={201: BatchOut, **POST_ERRORS},
    summary="Send rewards: one recipient or a list, at once or at send_at",
    openapi_extra=idempotency_header(),
)
def batch_create(request: HttpRequest, payload: BatchIn):
    scope_require(request, Scope.SEND)
    permission_require(request, SEND_PERMISSION, "send rewards")
    if payload.send_at is not None and payload.send_at.utcoffset() is None:
        raise invalid([("send_at", "Give a time zone offset, e.g. 2026-12-24T09:00:00+01:00.")])
    # The schedule page's rule; and a time in the year 9999 no longer fits a datetime in UTC.
    if payload.send_at is not None and send_at_too_far(send_at=payload.send_at, now=timezone.now()):
        raise invalid([("send_at", TOO_FAR_AHEAD)])

    def run():
        campaign = campaign_find(request, payload.campaign)
        rows = recipient_rows(payload)
        key = request.headers.get("Idempotency-Key", "").strip()
        batch = sending.batch_create(
            campaign=campaign,
            mode=payload.mode,
            rows=rows,
            created_by=person(request),
            source=Batch.Source.API,
            idempotency_key=batch_idempotency_key(user_pk=person(request).pk, key=key)
            if key
            else None,
            send_at=payload.send_at,
        )
        return 201, batch_out(batch)

    return idempotent(request, run=run)


@router.get("/batches/{batch_id}", response={200: BatchOut, **ERRORS}, summary="Read a batch")
def batch_read(request: HttpRequest, batch_id: int):
    scope_require(request, Scope.READ)
    _batches_check(request)
    return Status(200, batch_out(batch_find(request, batch_id)))


@router.get(
    "/batches/{batch_id}/rows",
    response={200: RowPage, **ERRORS},
    summary="A batch's rows, in row order, a page at a time",
)
def batch_rows(
    request: HttpRequest,
    batch_id: int,
    state: str = "",
    cursor: str = "",
    limit: int = Query(100, ge=1, le=1000),
):
    scope_require(request, Scope.READ)
    _batches_check(request)
    batch = batch_find(request, batch_id)
    rows = batch.sends.order_by("row_number")
    if state:
        if state not in Send.State.values:
            raise invalid([("state", f"One of {', '.join(Send.State.values)}.")])
        rows = rows.filter(state=state)
    if cursor:
        if not cursor.isdigit() or len(cursor) > 9:
            raise invalid([("cursor", "Not a cursor this API gave.")])
        rows = rows.filter(row_number__gt=int(cursor))
    page = list(rows[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return Status(
        200,
        RowPage(
            rows=[
                RowOut(
                    row=send.row_number,
                    recipient=send.recipient,
                    name=send.name,
                    state=send.state,  # type: ignore[arg-type]
                    reward_id=send.remote_id,
                    url=send.url,
                    error=LINK_NOT_RECOVERED if send.link_not_recovered else send.error_message,
                    sent_at=send.sent_at,
                    updated_at=send.updated_at,
                )
                for send in page
            ],
            next_cursor=str(page[-1].row_number) if more else None,
        ),
    )


@router.get(
    "/batches/{batch_id}/results.csv",
    response=ERRORS,
    summary="A batch's results as CSV, as the batch page's download",
    openapi_extra=CSV,
)
def batch_results(request: HttpRequest, batch_id: int, state: str = ""):
    scope_require(request, Scope.READ)
    permission_require(request, SEND_PERMISSION, "download a batch's results")
    batch = batch_find(request, batch_id)
    export_record(
        actor=person(request),
        what="batch results",
        fmt="csv",
        filters={"state": state},
        allowed=("state",),
        campaign=batch.campaign,
        batch_pk=batch.pk,
        request=request,
    )
    results = batch_results_csv(batch=batch, state=state)
    response = StreamingHttpResponse(results.lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{results.filename}"'
    return response


def _batches_check(request: HttpRequest) -> None:
    # As the batch pages: senders, and approvers, who must read what they approve.
    if not (request.user.has_perm(SEND_PERMISSION) or request.user.has_perm(APPROVE_PERMISSION)):
        raise ApiProblem("forbidden", "Your role may not read batches.")


def _steer(request: HttpRequest, batch_id: int, act) -> object:
    scope_require(request, Scope.SEND)
    permission_require(request, SEND_PERMISSION, "steer batches")

    def run():
        batch = batch_find(request, batch_id)
        act(batch)
        return 200, batch_out(batch_find(request, batch_id))

    return idempotent(request, run=run)


@router.post(
    "/batches/{batch_id}/cancel",
    response={200: BatchOut, **POST_ERRORS},
    summary="Cancel: rows not yet claimed are not sent (a batch not started is withdrawn)",
    openapi_extra=idempotency_header(),
)
def batch_cancel(request: HttpRequest, batch_id: int):
    return _steer(
        request, batch_id, lambda batch: sending.batch_cancel(batch=batch, actor=person(request))
    )


@router.post(
    "/batches/{batch_id}/retry-failed",
    response={200: BatchOut, **POST_ERRORS},
    summary="Send the failed rows again",
    openapi_extra=idempotency_header(),
)
def batch_retry_failed(request: HttpRequest, batch_id: int):
    return _steer(
        request,
        batch_id,
        lambda batch: sending.batch_retry_failed(batch=batch, actor=person(request)),
    )


def _decide(request: HttpRequest, batch_id: int, act) -> object:
    scope_require(request, Scope.SEND)
    permission_require(request, APPROVE_PERMISSION, "approve or decline batches")

    def run():
        batch = batch_find(request, batch_id)
        if batch.state != Batch.State.AWAITING_APPROVAL:
            raise ApiProblem(
                "conflict",
                f"Batch {batch.pk} is {batch.get_state_display().lower()}: "
                "only a batch awaiting approval is approved or declined.",
            )
        act(batch)
        return 200, batch_out(batch_find(request, batch_id))

    return idempotent(request, run=run)


@router.post(
    "/batches/{batch_id}/approve",
    response={200: BatchOut, **POST_ERRORS},
    summary="Approve a batch awaiting approval (not your own)",
    openapi_extra=idempotency_header(),
)
def batch_approve(request: HttpRequest, batch_id: int):
    return _decide(
        request, batch_id, lambda batch: controls.batch_approve(batch=batch, actor=person(request))
    )


@router.post(
    "/batches/{batch_id}/decline",
    response={200: BatchOut, **POST_ERRORS},
    summary="Decline a batch awaiting approval, saying why",
    openapi_extra=idempotency_header(),
)
def batch_decline(request: HttpRequest, batch_id: int, payload: DeclineIn):
    return _decide(
        request,
        batch_id,
        lambda batch: controls.batch_decline(
            batch=batch, actor=person(request), reason=payload.reason.strip()
        ),
    )
