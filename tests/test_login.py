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

from tests.conftest import PASSWORD, totp_code

pytestmark = pytest.mark.django_db

LOCKED_OUT = "Too many failed logins"


def log_in(client, username: str, password: str, next_url: str = ""):
    data = {"login": username, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post(reverse("account_login"), data)


def test_an_anonymous_visitor_is_sent_to_the_login_page_and_back(client, admin_user):
    page = reverse("campaigns:list")
    response = client.get(page)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={page}"

    response = log_in(client, admin_user.username, PASSWORD, next_url=page)
    # The admin has two-factor sign-in: the code first, then the page asked for.
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    assert response.status_code == 302
    assert response["Location"] == page
    assert client.get(page).status_code == 200


# --- Two-factor sign-in (allauth.mfa) --------------------------------------------------------


def test_with_totp_set_up_the_password_alone_does_not_sign_in(client, admin_user):
    response = log_in(client, admin_user.username, PASSWORD)
    assert response["Location"] == reverse("mfa_authenticate")
    assert client.get(reverse("home")).status_code == 302  # not signed in yet
    wrong = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert wrong.status_code == 200 and b"Incorrect code" in wrong.content
    assert client.get(reverse("home")).status_code == 302


def test_an_admin_without_two_factor_is_sent_to_set_it_up_before_anything_else(client, cast):
    from allauth.mfa.models import Authenticator

    admin = cast["admin"]
    Authenticator.objects.filter(user=admin).delete()
    assert log_in(client, admin.username, PASSWORD).status_code == 302  # no code asked
    for page in (reverse("home"), reverse("campaigns:list"), reverse("rewards:send")):
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"] == reverse("mfa_activate_totp"), page
    # A live part polling is told where to go, not handed the setup page in its fragment.
    poll = client.get(reverse("rewards:sync_status"), headers={"HX-Request": "true"})
    assert poll.status_code == 204 and poll["HX-Redirect"] == reverse("mfa_activate_totp")

    # Setting up a second factor asks for the password again first (allauth: sign-in alone
    # does not count as a re-authentication).
    asked = client.get(reverse("mfa_activate_totp"))
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    client.post(asked["Location"], {"password": PASSWORD})
    setup = client.get(reverse("mfa_activate_totp"))
    assert setup.status_code == 200
    secret = setup.context["form"].secret
    done = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert done.status_code == 302
    assert Authenticator.objects.filter(user=admin, type="totp").exists()
    assert client.get(reverse("campaigns:list")).status_code == 200
    # The secret is kept encrypted, not as it was shown.
    stored = Authenticator.objects.get(user=admin, type="totp").data["secret"]
    assert secret not in stored


def test_a_marketer_is_not_required_to_set_up_two_factor(client, marketer):
    assert log_in(client, marketer.username, PASSWORD)["Location"] == "/"
    assert client.get(reverse("home")).status_code == 200


def test_a_recovery_code_signs_in_once(client, admin_user):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    codes = RecoveryCodes.activate(admin_user).generate_codes()
    log_in(client, admin_user.username, PASSWORD)
    assert client.post(reverse("mfa_authenticate"), {"code": codes[0]})["Location"] == "/"
    assert client.get(reverse("home")).status_code == 200

    client.post(reverse("account_logout"))
    log_in(client, admin_user.username, PASSWORD)
    again = client.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert again.status_code == 200 and b"Incorrect code" in again.content
    assert client.get(reverse("home")).status_code == 302
    assert client.post(reverse("mfa_authenticate"), {"code": codes[1]})["Location"] == "/"


def test_an_admin_cannot_remove_the_second_factor_their_role_requires(client, admin_user):
    from allauth.mfa.models import Authenticator

    log_in(client, admin_user.username, PASSWORD)
    client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    response = client.post(reverse("mfa_deactivate_totp"), follow=True)
    assert Authenticator.objects.filter(user=admin_user, type="totp").exists()
    assert response.status_code in (200, 404)


def test_the_login_page_itself_is_open(client):
    response = client.get(reverse("account_login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_a_wrong_password_shows_the_form_again_without_logging_in(client, marketer):
    response = log_in(client, marketer.username, "not the password")
    assert response.status_code == 200
    assert b"The username and/or password you specified are not correct." in response.content
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


def test_the_sign_up_page_says_people_are_invited(client):
    response = client.get(reverse("account_signup"))
    assert response.status_code == 200
    assert b"Sign Up Closed" in response.content
    answer = client.post(
        reverse("account_signup"),
        {
            "username": "eve",
            "email": "eve@example.com",
            "password1": "x" * 20,
            "password2": "x" * 20,
        },
    )
    assert answer.status_code == 200
    from django.contrib.auth.models import User

    assert not User.objects.filter(username="eve").exists()


def test_one_can_log_in_with_the_email_address(client, marketer):
    marketer.email = "mark@example.com"
    marketer.save()
    assert log_in(client, "mark@example.com", PASSWORD).status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_logging_out_takes_a_post_and_ends_the_session(client, marketer):
    log_in(client, marketer.username, PASSWORD)
    assert client.get(reverse("home")).status_code == 200
    # A GET only asks: a link or an image on another site cannot log anyone out.
    asked = client.get(reverse("account_logout"))
    assert asked.status_code == 200 and b'method="post"' in asked.content
    assert client.get(reverse("home")).status_code == 200
    response = client.post(reverse("account_logout"))
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302


# --- The address a lock-out counts by, behind proxies (DJANGO_TRUSTED_PROXY_COUNT) ---------

PROXY = "10.0.0.1"


def log_in_from(client, username: str, password: str, *, forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return client.post(
        reverse("account_login"),
        {"login": username, "password": password},
        REMOTE_ADDR=PROXY,
        headers=headers,
    )


def test_two_people_behind_one_proxy_are_locked_out_separately(settings, marketer):
    from django.test import Client

    settings.TRUSTED_PROXY_COUNT = 1
    guesser, owner = Client(), Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in_from(guesser, marketer.username, "guess", forwarded="203.0.113.5")
    assert (
        log_in_from(guesser, marketer.username, PASSWORD, forwarded="203.0.113.5").status_code
        == 429
    )

    # The same proxy, the same user name, another person: not locked out.
    assert (
        log_in_from(owner, marketer.username, PASSWORD, forwarded="198.51.100.7").status_code == 302
    )
    assert AccessAttempt.objects.get().ip_address == "203.0.113.5"


def test_behind_two_proxies_the_person_is_the_address_the_first_one_saw(settings, marketer):
    from django.test import Client

    settings.TRUSTED_PROXY_COUNT = 2
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in_from(Client(), marketer.username, "guess", forwarded="203.0.113.5, 10.0.0.2")
    assert AccessAttempt.objects.get().ip_address == "203.0.113.5"
    locked = log_in_from(Client(), marketer.username, PASSWORD, forwarded="203.0.113.5, 10.0.0.2")
    assert locked.status_code == 429
    other = log_in_from(Client(), marketer.username, PASSWORD, forwarded="198.51.100.7, 10.0.0.2")
    assert other.status_code == 302


def test_without_trusted_proxies_a_forged_x_forwarded_for_does_not_escape_the_lock(
    client, settings, marketer
):
    assert settings.TRUSTED_PROXY_COUNT == 0
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in_from(client, marketer.username, "guess", forwarded=f"192.0.2.{n}")
    response = log_in_from(client, marketer.username, PASSWORD, forwarded="198.51.100.7")
    assert response.status_code == 429
    assert AccessAttempt.objects.get().ip_address == PROXY


def test_an_address_forged_left_of_the_proxys_does_not_escape_the_lock(client, settings, marketer):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in_from(client, marketer.username, "guess", forwarded=f"192.0.2.{n}, 203.0.113.5")
    for forged in ("198.51.100.7, 203.0.113.5", "not-an-address, 203.0.113.5", ", 203.0.113.5"):
        response = log_in_from(client, marketer.username, PASSWORD, forwarded=forged)
        assert response.status_code == 429, forged


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (1, None, PROXY),  # not through the proxy: its own address is all there is
        (2, "203.0.113.5", PROXY),  # through one proxy of two
        (1, "junk", PROXY),
        (1, " 2001:DB8::1 ", "2001:db8::1"),
        (3, "192.0.2.9, 203.0.113.5, 10.0.0.3, 10.0.0.2", "203.0.113.5"),
    ],
)
def test_the_client_address_of_a_request(settings, rf, count, forwarded, expected):
    from mokudash.client_ip import client_ip

    settings.TRUSTED_PROXY_COUNT = count
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    request = rf.get("/", REMOTE_ADDR=PROXY, headers=headers)
    assert client_ip(request) == expected


def test_the_test_code_is_never_one_about_to_expire():
    """totp_code waits for the next period when its code has under TOTP_MARGIN_SECONDS left,
    as a person would: a browser login typed it 1 s before the period ended and the server,
    in the next period, refused it."""
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    from tests.conftest import TOTP_MARGIN_SECONDS, TOTP_SECRET

    now = [30 * 1_000_000 + 30 - TOTP_MARGIN_SECONDS + 1.0]  # 4 s left of period 1,000,000
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    code = totp_code(clock=lambda: now[0], sleep=sleep)
    assert slept and now[0] // 30 == 1_000_001
    assert code == format_hotp_value(hotp_value(TOTP_SECRET, 1_000_001))

    now[0] = 30 * 1_000_002 + 1.0  # 29 s left: no wait
    slept.clear()
    assert totp_code(clock=lambda: now[0], sleep=sleep) == format_hotp_value(
        hotp_value(TOTP_SECRET, 1_000_002)
    )
    assert not slept
