from django.shortcuts import render

from rewards.views import view_reports_required


@view_reports_required
def report(request):
    return render(request, "rewards/report.html")
