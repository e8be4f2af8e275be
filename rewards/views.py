from django.contrib.auth.decorators import permission_required
from django.shortcuts import render

send_rewards = permission_required("campaigns.send_rewards", raise_exception=True)
view_reports = permission_required("campaigns.view_reports", raise_exception=True)


@send_rewards
def send(request):
    return render(request, "rewards/send.html")


@view_reports
def reward_list(request):
    return render(request, "rewards/list.html")


@view_reports
def report(request):
    return render(request, "rewards/report.html")
