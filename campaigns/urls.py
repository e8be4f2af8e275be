from django.urls import path

from campaigns import views

app_name = "campaigns"
urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("new/", views.campaign_create, name="create"),
    path("<int:pk>/", views.campaign_detail, name="detail"),
    path("<int:pk>/edit/", views.campaign_edit, name="edit"),
    path("<int:pk>/controls/", views.campaign_controls, name="controls"),
    path("<int:pk>/passcode/", views.campaign_passcode, name="passcode"),
    path("<int:pk>/check/", views.campaign_check, name="check"),
    path("<int:pk>/disable/", views.campaign_disable, name="disable"),
    path("<int:pk>/enable/", views.campaign_enable, name="enable"),
]
