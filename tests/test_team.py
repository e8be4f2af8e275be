"""The team, managed in the app: invitations by mail (a real SMTP server), roles, campaigns,
deactivation, the last admin kept, and the commands for automation."""

from __future__ import annotations

import datetime as dt
import io
import threading

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Invitation
from audit.models import AuditEvent, Kind
from campaigns import roles
from campaigns.models import CampaignAccess
from campaigns.selectors import campaign_ids_visible_to
from tests.conftest import PASSWORD, totp_code
from tests.mail import links

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a long new password for nina"


def _admin_client(client, admin_user):
    """Signed in as the admin, with the password and the code, re-authenticated just now."""
    client.post(reverse("account_login"), {"login": admin_user.username, "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert client.get(reverse("accounts:team")).status_code == 200
    return client


def _invite(client, email, role, *campaigns, all_campaigns=False):
    """The invite form, posted; the mail goes once the invitation is committed."""
    from django.test import TestCase

    data = {"email": email, "role": role, "campaigns": [c.pk for c in campaigns]}
    if all_campaigns:
        data["all_campaigns"] = "on"
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(reverse("accounts:invite"), data)


def test_an_invitation_by_mail_sets_a_password_and_signs_in_to_one_campaign(
    client, admin_user, spring, autumn, smtp_server
):
    _admin_client(client, admin_user)
    response = _invite(client, "nina@example.com", roles.MARKETING, spring)
    assert response.status_code == 302, response.content.decode()[:2000]

    (mail,) = smtp_server.wait_for(to="nina@example.com")
    (link,) = [url for url in links(mail) if "/invitations/" in url]
    assert link.startswith("http://testserver/invitations/")
    token = link.rstrip("/").rsplit("/", 1)[1]
    # Only a hash of the token is kept, and the trail has none of it.
    assert not Invitation.objects.filter(token_hash=token).exists()
    assert token not in str(list(AuditEvent.objects.values()))

    visitor = type(client)()
    path = link.removeprefix("http://testserver")
    page = visitor.get(path)
    assert page.status_code == 200 and b"Join mokudash" in page.content
    joined = visitor.post(
        path, {"username": "nina", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    )
    assert joined.status_code == 302 and joined["Location"] == reverse("account_login")

    signed_in = visitor.post(reverse("account_login"), {"login": "nina", "password": NEW_PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"
    send_page = visitor.get(reverse("rewards:send")).content.decode()
    assert "Spring" in send_page and "Autumn" not in send_page
    nina = User.objects.get(username="nina")
    assert nina.email == "nina@example.com"
    assert campaign_ids_visible_to(user=nina) == (spring.pk,)

    # The link works once.
    again = type(client)().get(path)
    assert again.status_code == 410 and b"has been used already" in again.content
    kinds = set(AuditEvent.objects.values_list("kind", flat=True))
    assert {Kind.INVITATION_SENT, Kind.INVITATION_ACCEPTED, Kind.SIGN_IN} <= kinds


def test_an_expired_invitation_is_refused_and_makes_no_one(client, admin_user, spring, smtp_server):
    _admin_client(client, admin_user)
    _invite(client, "old@example.com", roles.MANAGER, spring)
    (mail,) = smtp_server.wait_for(to="old@example.com")
    (link,) = [url for url in links(mail) if "/invitations/" in url]
    Invitation.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))

    path = link.removeprefix("http://testserver")
    visitor = type(client)()
    assert visitor.get(path).status_code == 410
    refused = visitor.post(
        path, {"username": "old", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    )
    assert refused.status_code == 410 and b"expired" in refused.content
    assert not User.objects.filter(username="old").exists()


def test_two_acceptances_of_one_invitation_make_one_person(admin_user, spring):
    invitation = services.person_invite(
        actor=admin_user,
        email="twice@example.com",
        role=roles.MARKETING,
        all_campaigns=False,
        campaigns=[spring],
        site_url="http://x",
    )
    token = "t" * 43
    Invitation.objects.filter(pk=invitation.pk).update(token_hash=services._token_hash(token))
    services.invitation_accept(token=token, username="first", password=NEW_PASSWORD)
    with pytest.raises(services.TeamRefused, match="used already"):
        services.invitation_accept(token=token, username="second", password=NEW_PASSWORD)
    assert not User.objects.filter(username="second").exists()


def test_inviting_someone_already_in_the_team_is_refused(client, admin_user, marketer, spring):
    marketer.email = "mark@example.com"
    marketer.save()
    _admin_client(client, admin_user)
    response = _invite(client, "Mark@Example.com", roles.MARKETING, spring)
    assert response.status_code == 200
    assert b"already belongs to someone in the team" in response.content
    assert not Invitation.objects.exists()


def test_inviting_asks_for_the_password_again_after_ten_minutes(client, admin_user, spring):
    client.force_login(admin_user)
    response = _invite(client, "late@example.com", roles.MARKETING, spring)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert not Invitation.objects.exists()


def test_password_reset_by_mail_end_to_end(client, marketer, smtp_server):
    marketer.email = "mark@example.com"
    marketer.save()
    asked = client.post(reverse("account_reset_password"), {"email": "mark@example.com"})
    assert asked.status_code == 302
    (mail,) = smtp_server.wait_for(to="mark@example.com")
    (link,) = [url for url in links(mail) if "/password/reset/key/" in url]
    path = link.removeprefix("http://testserver")

    form = client.get(path, follow=True)
    assert form.status_code == 200
    set_url = form.redirect_chain[-1][0] if form.redirect_chain else path
    done = client.post(set_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302

    assert (
        client.post(
            reverse("account_login"), {"login": marketer.username, "password": NEW_PASSWORD}
        )["Location"]
        == "/"
    )
    client.post(reverse("account_logout"))
    # The link works once.
    again = client.get(path, follow=True)
    assert b"invalid" in again.content.lower()
    assert AuditEvent.objects.filter(kind=Kind.PASSWORD_RESET, person=marketer).exists()


def test_the_role_and_campaigns_change_and_the_trail_says_from_what_to_what(
    admin_user, marketer, spring, autumn
):
    services.person_campaigns_set(
        actor=admin_user, person=marketer, all_campaigns=False, campaigns=[autumn]
    )
    services.person_role_set(actor=admin_user, person=marketer, role=roles.MANAGER)

    assert services.person_role_of(marketer) == roles.MANAGER
    assert campaign_ids_visible_to(user=User.objects.get(pk=marketer.pk)) == (autumn.pk,)
    role = AuditEvent.objects.get(kind=Kind.ROLE_CHANGED)
    assert role.detail == {"role": [roles.MARKETING, roles.MANAGER]} and role.actor == admin_user
    access = AuditEvent.objects.get(kind=Kind.ACCESS_CHANGED)
    assert access.detail == {"campaigns": ["all", ["autumn-1"]]}


def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(admin_user, marketer):
    with pytest.raises(services.TeamRefused, match="last active admin"):
        services.person_role_set(actor=admin_user, person=admin_user, role=roles.MARKETING)
    services.person_role_set(actor=admin_user, person=marketer, role=roles.ADMIN)
    # Two admins now: one may step down.
    services.person_role_set(actor=admin_user, person=admin_user, role=roles.MANAGER)
    with pytest.raises(services.TeamRefused, match="last active admin"):
        services.person_deactivate(actor=admin_user, person=marketer)
    assert User.objects.get(pk=marketer.pk).is_active


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(cast):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite has one writer at a time")
    first, second = cast["admin"], cast["marketer"]
    services.person_role_set(actor=first, person=second, role=roles.ADMIN)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor, person):
        try:
            barrier.wait()
            services.person_role_set(actor=actor, person=person, role=roles.MARKETING)
            outcomes.append("demoted")
        except services.TeamRefused:
            outcomes.append("refused")
        finally:
            close_old_connections()

    threads = [
        threading.Thread(target=demote, args=(first, second)),
        threading.Thread(target=demote, args=(second, first)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["demoted", "refused"]
    assert len(services._active_admin_ids()) == 1


def test_a_deactivated_persons_open_session_is_refused_at_once(client, admin_user, marketer):
    client.post(reverse("account_login"), {"login": marketer.username, "password": PASSWORD})
    assert client.get(reverse("rewards:batch_list")).status_code == 200

    services.person_deactivate(actor=admin_user, person=marketer)

    page = client.get(reverse("rewards:batch_list"))
    assert page.status_code == 302 and page["Location"].startswith(reverse("account_login"))
    poll = client.get(reverse("rewards:sync_status"), headers={"HX-Request": "true"})
    assert poll.status_code == 204 and poll["HX-Redirect"].startswith(reverse("account_login"))
    assert (
        client.post(reverse("account_login"), {"login": marketer.username, "password": PASSWORD})[
            "Location"
        ]
        != "/"
    )
    event = AuditEvent.objects.get(kind=Kind.PERSON_DEACTIVATED)
    assert event.person == marketer and event.detail["sessions_ended"] >= 1


def test_the_team_page_lists_everyone_with_role_campaigns_and_two_factor(
    client, admin_user, marketer, spring, django_assert_max_num_queries
):
    CampaignAccess.objects.create(user=marketer, all_campaigns=False).campaigns.add(spring)
    client.force_login(admin_user)
    with django_assert_max_num_queries(16):
        page = client.get(reverse("accounts:team")).content.decode()
    assert "alice-admin" in page and "mark-marketer" in page and "Spring" in page
    assert "Marketing" in page and ">on<" in page


def test_user_add_takes_the_password_from_stdin_and_names_an_unknown_campaign(spring, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(NEW_PASSWORD + "\n"))
    out = io.StringIO()
    call_command(
        "user_add",
        "--username",
        "paul",
        "--email",
        "paul@example.com",
        "--role",
        "Manager",
        "--campaign",
        "spring-1",
        "--password-stdin",
        stdout=out,
    )
    paul = User.objects.get(username="paul")
    assert paul.check_password(NEW_PASSWORD)
    assert campaign_ids_visible_to(user=paul) == (spring.pk,)
    assert "Added paul as Manager on spring-1" in out.getvalue()
    with pytest.raises(CommandError, match="No campaign has the ID nope-9"):
        call_command(
            "user_add",
            "--username",
            "x",
            "--email",
            "x@example.com",
            "--role",
            "Marketing",
            "--campaign",
            "nope-9",
            "--password-stdin",
        )
    with pytest.raises(CommandError, match="--all-campaigns"):
        call_command(
            "user_add", "--username", "y", "--email", "y@example.com", "--role", "Marketing"
        )


def test_user_invite_sends_the_mail(
    spring, smtp_server, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://rewards.example.com"
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "user_invite",
            "--email",
            "zoe@example.com",
            "--role",
            "Marketing",
            "--campaign",
            "spring-1",
            stdout=out,
        )
    (mail,) = smtp_server.wait_for(to="zoe@example.com")
    assert any(url.startswith("https://rewards.example.com/invitations/") for url in links(mail))
    assert "Invited zoe@example.com as Marketing" in out.getvalue()
