from django.shortcuts import render

from rewards.selectors.overview import OverviewParts, overview_campaign_ids, overview_for
from rewards.services.controls import budgets_this_month


def home(request):
    """Each role's overview: what needs them, and how we are doing (local tables only)."""
    parts = OverviewParts.for_user(request.user)
    overview = overview_for(user=request.user, parts=parts)
    return render(
        request,
        "home.html",
        {
            "overview": overview,
            "parts": parts,
            "chart": overview.chart_data(),
            "budgets": budgets_this_month(campaign_ids=overview_campaign_ids(user=request.user)),
        },
    )
