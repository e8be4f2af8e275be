"""The project's own error pages, with the navigation, as `make run` and production serve them:
Django's debug mode off (DJANGO_DEBUG_PAGES unset), whatever DJANGO_DEBUG says. Also the
logged-out message and /favicon.ico."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AnonymousUser
from django.db import OperationalError
from django.templatetags.static import static
from django.test import Client, RequestFactory, override_settings
from django.urls import path, reverse

import mokudash.urls
from mokudash.errors import PLAIN_500, server_error
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

# Django's debug pages say this; our pages never do.
DEBUG_PAGE = "DEBUG = True"
NAVIGATION = 'class="navbar'


def boom(request):
    raise RuntimeError("a bug in a view")


# A test-only URL configuration: the project's URLs plus one that raises.
urlpatterns = [
    path("boom/", boom),
    path("open-boom/", login_not_required(boom)),
    *mokudash.urls.urlpatterns,
]
handler500 = mokudash.urls.handler500


def logged_in(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user, backend="allauth.account.auth_backends.AuthenticationBackend")
    return client


def test_the_settings_of_a_developer_machine_keep_django_debug_mode_off():
    def show(**env: str) -> list[str]:
        script = "from django.conf import settings; print(settings.DEVELOPMENT, settings.DEBUG)"
        keep = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
        result = subprocess.run(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "shell", "-c", script],
            env={**keep, "DJANGO_ENV_FILE": os.devnull, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()[-2:]

    assert show(DJANGO_DEBUG="true") == ["True", "False"]
    assert show(DJANGO_DEBUG="true", DJANGO_DEBUG_PAGES="true") == ["True", "True"]


@override_settings(DEBUG=False)
def test_an_unknown_address_gets_our_404_page_with_the_navigation(marketer):
    response = logged_in(marketer).get("/no-such-page/")
    assert response.status_code == 404
    text = response.content.decode()
    assert "Page not found" in text
    assert NAVIGATION in text and "Log out" in text and marketer.username in text
    assert DEBUG_PAGE not in text


@override_settings(DEBUG=False)
def test_an_anonymous_visitor_gets_the_404_page_with_a_way_to_log_in(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    text = response.content.decode()
    assert "Page not found" in text and f'href="{reverse("account_login")}"' in text


@override_settings(DEBUG=False)
def test_a_page_of_another_role_gets_our_403_page_with_the_navigation(marketer):
    response = logged_in(marketer).get(reverse("campaigns:list"))
    assert response.status_code == 403
    text = response.content.decode()
    assert "Not allowed" in text and marketer.username in text
    assert NAVIGATION in text and "Log out" in text


@override_settings(DEBUG=False)
def test_a_form_without_its_csrf_token_gets_our_403_page(marketer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer, backend="allauth.account.auth_backends.AuthenticationBackend")
    response = client.post(reverse("account_logout"))
    assert response.status_code == 403
    text = response.content.decode()
    assert "This form was refused" in text
    assert NAVIGATION in text and marketer.username in text
    assert "CSRF verification failed" not in text  # Django's own page
    # Nothing was done: still logged in.
    assert client.get(reverse("home")).status_code == 200


@override_settings(DEBUG=False, ROOT_URLCONF=__name__)
def test_a_failing_view_gets_our_500_page_with_the_navigation(marketer, caplog):
    response = logged_in(marketer).get("/boom/")
    assert response.status_code == 500
    text = response.content.decode()
    assert "Something went wrong" in text
    assert NAVIGATION in text and marketer.username in text
    assert DEBUG_PAGE not in text and "a bug in a view" not in text
    # The traceback is in the log (the terminal of `make run`), not on the page.
    assert "Internal Server Error: /boom/" in caplog.text and "a bug in a view" in caplog.text


@override_settings(DEBUG=False, ROOT_URLCONF=__name__)
def test_an_anonymous_visitor_gets_the_500_page_too(client):
    client.raise_request_exception = False
    response = client.get("/open-boom/")
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


class BrokenUser(AnonymousUser):
    """A user that cannot be read: the database is gone."""

    @property
    def is_authenticated(self):
        raise OperationalError("the database is down")


def test_the_500_page_renders_without_the_request_when_the_request_is_broken():
    request = RequestFactory().get("/anything/")
    request.user = BrokenUser()
    response = server_error(request)
    assert response.status_code == 500
    text = response.content.decode()
    assert "Something went wrong" in text and NAVIGATION in text
    assert "Log out" not in text  # no user-specific navigation


def test_the_500_handler_answers_plain_html_when_its_template_cannot_render():
    response = server_error(RequestFactory().get("/"), template_name="no-such-template.html")
    assert response.status_code == 500
    assert response.content.decode() == PLAIN_500


def test_logging_out_says_so_on_the_login_page(client, marketer):
    client.post(reverse("account_login"), {"login": marketer.username, "password": PASSWORD})
    assert client.get(reverse("home")).status_code == 200
    response = client.post(reverse("account_logout"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("account_login")
    assert "You have been logged out." in response.content.decode()
    # Once only.
    assert "You have been logged out." not in client.get(reverse("account_login")).content.decode()


def test_the_login_page_says_nothing_of_a_logout_that_did_not_happen(client):
    response = client.post(reverse("account_logout"), follow=True)
    assert "You have been logged out." not in response.content.decode()


def test_favicon_ico_leads_to_the_svg_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == static("favicon.svg")
    icon = Path(settings.BASE_DIR) / "static" / "favicon.svg"
    assert icon.read_text().startswith("<svg")
    assert (
        f'href="{static("favicon.svg")}"' in client.get(reverse("account_login")).content.decode()
    )
