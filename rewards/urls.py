from django.urls import path

from rewards import views

app_name = "rewards"
urlpatterns = [
    path("send/", views.send, name="send"),
    path("", views.reward_list, name="list"),
    path("reports/", views.report, name="report"),
]
