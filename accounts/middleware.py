"""Sessions and sign-in around every request: two-factor first for the roles that require it,
idle expiry, and the login redirect told to htmx."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth import middleware as auth_middleware
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone

from accounts.selectors import person_must_use_mfa, person_uses_mfa, person_zone

# What a person without their required second factor may still open: setting it up (and the
# password asked before it), logging out, and what the pages around them need.
_OPEN_WITHOUT_MFA = ("mfa_", "account_logout", "account_reauthenticate", "account_login")
_OPEN_PATHS = ("/static/", "/favicon.ico")
_HAS_MFA = "_mokudash_has_mfa"


def mfa_required(get_response: Callable[[HttpRequest], HttpResponse]):
    """A signed-in person whose role requires two-factor sign-in (MFA_REQUIRED_ROLES) and who
    has none is sent to set TOTP up; nothing else opens until they have. An htmx request is
    told to go there (HX-Redirect) rather than answered with the setup page in a fragment."""

    def middleware(request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            user.is_authenticated
            and not request.path.startswith(_OPEN_PATHS)
            and not _is_open(request)
            and not request.session.get(_HAS_MFA)
            and person_must_use_mfa(user=user)
        ):
            if person_uses_mfa(user=user):
                # Known for the rest of the session: a required factor cannot be removed.
                request.session[_HAS_MFA] = True
                return get_response(request)
            setup = reverse("mfa_activate_totp")
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = setup
                return response
            messages.info(
                request,
                "Your role requires two-factor sign-in: set up an authenticator app first.",
                fail_silently=True,
            )
            return HttpResponseRedirect(setup)
        return get_response(request)

    return middleware


def _is_open(request: HttpRequest) -> bool:
    try:
        name = resolve(request.path_info).url_name or ""
    except Resolver404:
        return True  # a 404 page shows nothing
    return name.startswith(_OPEN_WITHOUT_MFA)


# Seconds between two renewals of a session's expiry: a request renews it at most once a
# minute, so that a busy page does not write the session row on every request.
_RENEW_EVERY = 60
_RENEWED = "_mokudash_renewed"


def session_renewal(get_response: Callable[[HttpRequest], HttpResponse]):
    """Idle expiry: a session lives SESSION_IDLE_MINUTES (SESSION_COOKIE_AGE) past the last
    request a person made. An htmx poll is no person: a tab left open on a live page does not
    keep its session alive."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and not request.headers.get("HX-Request"):
            now = int(time.time())
            if now - request.session.get(_RENEWED, 0) >= _RENEW_EVERY:
                # A write marks the session modified: it is saved with a fresh expiry.
                request.session[_RENEWED] = now
        return get_response(request)

    return middleware


def person_time_zone(get_response: Callable[[HttpRequest], HttpResponse]):
    """The times a page shows, in the signed-in person's own zone (Profile.time_zone), or
    the server's TIME_ZONE when they chose none. The zone is kept in the cache, so a request
    asks the database at most once an hour per person (profile_update forgets it)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        zone = person_zone(user=request.user) if request.user.is_authenticated else None
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return get_response(request)
        finally:
            timezone.deactivate()

    return middleware


def session_started(request: HttpRequest | None, user: Any) -> None:
    """At sign-in: the new session is renewed, knows whether its person has two-factor
    sign-in, and their time zone is kept, so that its first pages pay no extra query or write."""
    if request is None or not hasattr(request, "session"):
        return
    request.session[_RENEWED] = int(time.time())
    person_zone(user=user)
    if person_uses_mfa(user=user):
        request.session[_HAS_MFA] = True


class LoginRequiredMiddleware(auth_middleware.LoginRequiredMiddleware):
    """Django's, but an htmx request (a live part polling after its session ended) is told
    to load the login page (HX-Redirect), instead of having it swapped into the fragment."""

    # Django's stubs say a redirect; htmx is answered with a 204 that carries HX-Redirect.
    def handle_no_permission(  # type: ignore[override]
        self, request: HttpRequest, view_func: Any
    ) -> HttpResponse:
        response = super().handle_no_permission(request, view_func)
        if request.headers.get("HX-Request") and isinstance(response, HttpResponseRedirect):
            told = HttpResponse(status=204)
            told["HX-Redirect"] = response["Location"]
            return told
        return response
