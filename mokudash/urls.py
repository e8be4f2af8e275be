from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from mokudash import errors, views

urlpatterns = [
    path("", views.home, name="home"),
    # Sign-in, sign-out, password, email, two-factor and sessions: django-allauth's pages.
    path("accounts/", include("allauth.urls")),
    # A person's own API keys, among their account's pages (the API itself: api/v1/ below).
    path("accounts/api-keys/", include("api.page_urls")),
    # The team (admins) and the invitations' links.
    path("", include("accounts.urls")),
    # The old addresses of the login and logout pages, for bookmarks.
    path(
        "login/",
        login_not_required(RedirectView.as_view(pattern_name="account_login", query_string=True)),
        name="login",
    ),
    path("favicon.ico", errors.favicon, name="favicon"),
    path("campaigns/", include("campaigns.urls")),
    path("audit/", include("audit.urls")),
    path("rewards/", include("rewards.urls")),
    path("notices/", include("notices.urls")),
    # Our own API, for other systems (keys, not sessions), and the webhooks' admin pages.
    path("api/v1/", include("api.urls")),
    path("webhooks/", include("webhooks.urls")),
    path("django-admin/", admin.site.urls),
]

if settings.DEVELOPMENT:
    from accounts.views.outbox import outbox

    urlpatterns.append(path("dev/outbox/", outbox, name="dev_outbox"))

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))

# 404 and 403 are Django's own handlers (templates/404.html, 403.html); the 500 page must
# never fail itself, so it is ours.
handler500 = "mokudash.errors.server_error"
