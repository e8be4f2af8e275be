from django.urls import path

from rewards.views import browse, reports, send

app_name = "rewards"
urlpatterns = [
    # Sending (Marketing)
    path("send/", send.send, name="send"),
    # Browsing, reports and export (Manager)
    path("", browse.reward_list, name="list"),
    path("reports/", reports.report, name="report"),
]
