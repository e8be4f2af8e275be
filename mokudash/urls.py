from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from mokudash import auth_views as mokudash_auth_views
from mokudash import errors, views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", mokudash_auth_views.LogoutView.as_view(), name="logout"),
    path("favicon.ico", errors.favicon, name="favicon"),
    path("campaigns/", include("campaigns.urls")),
    path("rewards/", include("rewards.urls")),
    path("django-admin/", admin.site.urls),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))

# 404 and 403 are Django's own handlers (templates/404.html, 403.html); the 500 page must
# never fail itself, so it is ours.
handler500 = "mokudash.errors.server_error"
