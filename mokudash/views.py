from django.shortcuts import render

from rewards.selectors.sending import sends_paid_twice


def home(request):
    user = request.user
    sees_sends = user.has_perm("campaigns.send_rewards") or user.has_perm("campaigns.view_reports")
    paid_twice = sends_paid_twice().count() if sees_sends else 0
    return render(request, "home.html", {"paid_twice": paid_twice})
