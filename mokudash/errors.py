"""The project's own error pages, with the navigation, whatever DEBUG says: 500 (which must
never fail itself), a form refused for its CSRF token (403), and /favicon.ico.

404 and 403 are Django's own handlers, which render templates/404.html and 403.html with the
request (so the navigation knows who is logged in).
"""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_not_required
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseRedirect,
    HttpResponseServerError,
)
from django.template import loader
from django.templatetags.static import static
from django.views.decorators.csrf import requires_csrf_token

logger = logging.getLogger(__name__)

# The last resort, when even the template cannot be rendered (a missing static file under the
# manifest storage, a broken template): plain HTML that needs nothing.
PLAIN_500 = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Something went wrong · mokudash</title></head><body><main>"
    "<h1>Something went wrong</h1><p>The server failed to answer this page. The error is in "
    'the log. Try again in a moment, or go to <a href="/">the start page</a>.</p>'
    "</main></body></html>"
)


@requires_csrf_token
def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """handler500: the 500 page with the navigation of who is logged in; without it when the
    request itself is what broke (the database is down, so the user cannot be read); plain
    HTML when the template cannot be rendered at all. Never raises."""
    try:
        return HttpResponseServerError(loader.render_to_string(template_name, {}, request))
    except Exception:
        logger.exception("The 500 page failed with the request's context; trying without")
    try:
        return HttpResponseServerError(loader.render_to_string(template_name, {}))
    except Exception:
        logger.exception("The 500 page failed to render; answering plain HTML")
    return HttpResponseServerError(PLAIN_500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form refused because its security token was missing or stale, on
    our own page. The reason is logged by Django's CSRF middleware (django.security.csrf)."""
    return HttpResponseForbidden(loader.render_to_string("403_csrf.html", {}, request))


@login_not_required
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says: send them to the SVG icon."""
    return HttpResponseRedirect(static("favicon.svg"))
