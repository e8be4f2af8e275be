from django.urls import path, re_path

from sandbox import views

app_name = "sandbox"

# The API's own paths, with or without a trailing slash (clients differ, and APPEND_SLASH
# cannot redirect a POST).
_CREATE = r"reward|reward_url|reward_url2|multi_rewards|multi_reward_urls|multi_reward_urls2"
urlpatterns = [
    re_path(
        rf"^api/(?P<call>{_CREATE})/(?P<campaign_id>[^/]+)/?$",
        views.api_create,
        name="api_create",
    ),
    re_path(
        r"^api/(?P<call>rewards_in_month|all_rewards)/(?P<tail>[^/]+(?:/[^/]+)*)/?$",
        views.api_query,
        name="api_query",
    ),
    path("rewards/<str:remote_id>/", views.reward_page, name="reward_page"),
]
