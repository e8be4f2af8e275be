"""The project's own middleware."""

from __future__ import annotations

from django.utils.cache import patch_cache_control


def no_store_when_logged_in(get_response):
    """Every answer to a logged-in person is `Cache-Control: no-store`: the pages behind the
    login show recipients, links and reports, which neither the browser's cache (the back
    button after logging out, a shared machine) nor a proxy may keep. The login page and the
    static files (WhiteNoise answers them before this runs) may be cached as before."""

    def middleware(request):
        response = get_response(request)
        if request.user.is_authenticated:
            patch_cache_control(response, no_store=True)
        return response

    return middleware
