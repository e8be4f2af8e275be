from django.urls import path

from accounts.views import team

app_name = "accounts"
urlpatterns = [
    path("team/", team.team_list, name="team"),
    path("team/invite/", team.team_invite, name="invite"),
    path(
        "team/invitations/<int:pk>/withdraw/", team.invitation_withdraw, name="invitation_withdraw"
    ),
    path("team/<int:pk>/", team.person_detail, name="person"),
    path("team/<int:pk>/role/", team.person_role, name="person_role"),
    path("team/<int:pk>/campaigns/", team.person_campaigns, name="person_campaigns"),
    path("team/<int:pk>/deactivate/", team.person_deactivate, name="person_deactivate"),
    path("team/<int:pk>/reactivate/", team.person_reactivate, name="person_reactivate"),
    path(
        "team/<int:pk>/api-keys/<int:key_pk>/revoke/",
        team.person_key_revoke,
        name="person_key_revoke",
    ),
    path("invitations/<str:token>/", team.invitation_accept, name="invitation_accept"),
]
