from django.shortcuts import render

from rewards.views import send_rewards_required


@send_rewards_required
def send(request):
    return render(request, "rewards/send.html")
