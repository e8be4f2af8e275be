"""Logging out, with a message on the login page it leads to."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views


class LogoutView(auth_views.LogoutView):
    """Django's logout (POST only), then "You have been logged out." on the login page. The
    message is stored after the session is flushed, so it survives the logout."""

    def post(self, request, *args, **kwargs):
        was_logged_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_logged_in:
            messages.success(request, "You have been logged out.")
        return response
