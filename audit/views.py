"""The audit page (admins): every sensitive act, filtered, paginated, and as CSV."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit import selectors
from audit.forms import AuditFilterForm
from rewards.services.export import csv_pieces, export_record

manage = permission_required("campaigns.manage_campaigns", raise_exception=True)
PER_PAGE = 50


@manage
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    events = selectors.audit_events(filters=form.filters())
    page = Paginator(events, PER_PAGE).get_page(request.GET.get("page"))
    rows = [(event, selectors.audit_event_words(event)) for event in page]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/list.html",
        {"form": form, "page": page, "rows": rows, "query": query.urlencode()},
    )


@manage
def audit_csv(request: HttpRequest) -> StreamingHttpResponse:
    form = AuditFilterForm(request.GET or None)
    events = selectors.audit_events(filters=form.filters())
    export_record(
        actor=request.user,
        what="audit trail",
        fmt="csv",
        filters=request.GET,
        allowed=AuditFilterForm.base_fields,
        request=request,
    )
    response = StreamingHttpResponse(
        csv_pieces(header=selectors.AUDIT_CSV_HEADER, rows=selectors.audit_csv_rows(events)),
        content_type="text/csv; charset=utf-8",
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
