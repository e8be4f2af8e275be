"""The monthly report: a year (and a campaign, or all), from local tables; CSV and XLSX."""

from __future__ import annotations

import io

from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from campaigns.selectors import campaign_ids_visible_to, campaigns_visible_to
from rewards.forms import ReportForm
from rewards.selectors import mirror as selectors
from rewards.services import export
from rewards.views import export_rewards_required, view_reports_required


def _report(request) -> tuple[ReportForm, selectors.Report | None]:
    """The form and the report it asks for; no report (None) when it asks for a year without
    data or a campaign that does not exist: that is said, never swapped for another year."""
    this_year = timezone.now().year
    # Only the campaigns this person may see: in the menu, the years and every figure. Another
    # campaign's number is "no campaign", as if it did not exist.
    visible = campaign_ids_visible_to(user=request.user)
    years = sorted({this_year, *selectors.report_years(visible_ids=visible)}, reverse=True)
    campaigns = campaigns_visible_to(user=request.user).defer("notes").order_by("name")
    if not request.GET:
        form = ReportForm(initial={"year": this_year}, years=years, campaigns=campaigns)
        return form, selectors.report_for_year(year=this_year, visible_ids=visible)
    form = ReportForm(request.GET, years=years, campaigns=campaigns)
    if not form.is_valid():
        return form, None
    year = form.cleaned_data.get("year") or this_year
    campaign = form.cleaned_data.get("campaign")
    report = selectors.report_for_year(
        year=year, campaign_ids=(campaign,) if campaign else (), visible_ids=visible
    )
    return form, report


def _report_or_404(request) -> selectors.Report:
    form, data = _report(request)
    if data is None:
        raise Http404(" ".join(str(e) for errors in form.errors.values() for e in errors))
    return data


@view_reports_required
def report(request):
    form, data = _report(request)
    if data is None:
        # The page, with the menu to pick a year that has data, and why there is no report.
        return render(
            request,
            "rewards/report.html",
            {"form": form, "report": None},
            status=404,
        )
    return render(
        request,
        "rewards/report.html",
        {
            "form": form,
            "report": data,
            "totals": data.totals,
            "chart": data.chart_data(),
            "query": request.GET.urlencode(),
            "campaign_id": data.campaign_ids[0] if data.campaign_ids else "",
            "ledger_limit": selectors.LEDGER_LIST_LIMIT,
        },
    )


def _filename(data: selectors.Report, suffix: str) -> str:
    which = f"-campaign{data.campaign_ids[0]}" if data.campaign_ids else ""
    return f"report-{data.year}{which}{suffix}"


@export_rewards_required
def report_csv(request):
    data = _report_or_404(request)
    table = request.GET.get("table", "months")
    if table not in export.REPORT_TABLES:
        table = "months"
    response = StreamingHttpResponse(
        export.report_csv(report=data, table=table), content_type="text/csv; charset=utf-8"
    )
    export.export_record(
        actor=request.user,
        what="report",
        fmt="csv",
        filters=request.GET,
        allowed=("year", "campaign", "table"),
        request=request,
    )
    suffix = "" if table == "months" else f"-{table}"
    response["Content-Disposition"] = f'attachment; filename="{_filename(data, suffix)}.csv"'
    return response


@export_rewards_required
def report_xlsx(request):
    data = _report_or_404(request)
    out = io.BytesIO()
    export.report_xlsx(report=data, out=out)
    export.export_record(
        actor=request.user,
        what="report",
        fmt="xlsx",
        filters=request.GET,
        allowed=("year", "campaign"),
        request=request,
    )
    out.seek(0)
    return FileResponse(
        out,
        as_attachment=True,
        filename=_filename(data, ".xlsx"),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
