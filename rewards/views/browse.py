from django.shortcuts import render

from rewards.views import view_reports_required


@view_reports_required
def reward_list(request):
    return render(request, "rewards/list.html")
