from django.shortcuts import render

from rewards.selectors.overview import OverviewParts, overview_for


def home(request):
    """Each role's overview: what needs them, and how we are doing (local tables only)."""
    parts = OverviewParts.for_user(request.user)
    overview = overview_for(user=request.user, parts=parts)
    return render(
        request,
        "home.html",
        {"overview": overview, "parts": parts, "chart": overview.chart_data()},
    )
