"""Logging in: required everywhere, and locked for a while after repeated failures (django-axes).

The tests post to the real login form with the test client: django-axes counts failures per
username and IP address, and needs the request (client.login() would not give it one).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOCKED_OUT = "Too many failed logins"


def log_in(client, username: str, password: str, next_url: str = ""):
    data = {"username": username, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post(reverse("login"), data)


def test_an_anonymous_visitor_is_sent_to_the_login_page_and_back(client, admin_user):
    page = reverse("campaigns:list")
    response = client.get(page)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={page}"

    response = log_in(client, admin_user.username, PASSWORD, next_url=page)
    assert response.status_code == 302
    assert response["Location"] == page
    assert client.get(page).status_code == 200


def test_the_login_page_itself_is_open(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_a_wrong_password_shows_the_form_again_without_logging_in(client, marketer):
    response = log_in(client, marketer.username, "not the password")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert client.get(reverse("home")).status_code == 302


def test_repeated_failed_logins_lock_out_even_the_right_password(client, marketer):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, marketer.username, "guess").status_code == 200
    # The fifth failure reaches the limit: from now on the lockout page answers.
    locked = log_in(client, marketer.username, "guess")
    assert locked.status_code == 429
    assert LOCKED_OUT.encode() in locked.content

    right = log_in(client, marketer.username, PASSWORD)
    assert right.status_code == 429
    assert LOCKED_OUT.encode() in right.content
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("home")).status_code == 302


def test_a_lockout_of_one_person_does_not_lock_out_the_others(client, marketer, manager):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, marketer.username, "guess")
    assert log_in(client, marketer.username, PASSWORD).status_code == 429
    # Same browser, same address, another person: the lockout is per username and address.
    assert log_in(client, manager.username, PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, marketer):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, marketer.username, "guess")
    assert log_in(client, marketer.username, PASSWORD).status_code == 429
    # Let the cool-off pass without waiting for it: the failures are now older than it.
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time
        - settings.AXES_COOLOFF_TIME
        - timedelta(seconds=1)
    )
    response = log_in(client, marketer.username, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse(settings.LOGIN_REDIRECT_URL)


def test_logging_out_takes_a_post_and_ends_the_session(client, admin_user):
    log_in(client, admin_user.username, PASSWORD)
    assert client.get(reverse("home")).status_code == 200
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302
