"""A person's API keys pages (api/views.py) and the admin's card of them on the Team page:
made after the password again, shown once, revoked at once, each person's own."""

from __future__ import annotations

import logging
import re

import pytest
from django.urls import reverse

from api.models import ApiKey
from api.services import api_key_create
from audit.models import AuditEvent, Kind
from tests.api.conftest import ApiClient
from tests.conftest import PASSWORD, reauthenticate

pytestmark = pytest.mark.django_db

BACKEND = "allauth.account.auth_backends.AuthenticationBackend"
SECRET = re.compile(r"mkd_[A-Za-z0-9_-]{40,}")
FORM = {"name": "CRM export", "scopes": ["read"], "expires": "90"}


@pytest.fixture
def as_marketer(client, marketer):
    client.force_login(marketer, backend=BACKEND)
    return client


def _make(client, **form) -> tuple[str, object]:
    """Re-authenticate, make a key through the form; the key the page shows, and the page."""
    reauthenticate(client)
    answer = client.post(reverse("api_keys:create"), {**FORM, **form})
    assert answer.status_code == 200, answer.content[:500]
    shown = SECRET.findall(answer.content.decode())
    assert len(set(shown)) == 1, shown
    return shown[0], answer


def _reauthenticated_long_ago(client, seconds: int) -> None:
    """Move the session's record of the password given again `seconds` into the past."""
    session = client.session
    records = session["account_authentication_methods"]
    for record in records:
        record["at"] -= seconds
    session["account_authentication_methods"] = records
    session.save()


def test_the_page_without_keys_says_what_a_key_is_for_and_links_the_api_docs(as_marketer):
    page = as_marketer.get(reverse("api_keys:list"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="no-api-keys"' in html
    assert "No API keys yet" in html
    assert f'href="{reverse("api:openapi-view")}"' in html
    assert f'href="{reverse("api_keys:create")}"' in html


def test_the_account_pages_and_the_user_menu_lead_to_it(as_marketer):
    for name in ("account_email", "notices:settings"):
        html = as_marketer.get(reverse(name)).content.decode()
        assert f'href="{reverse("api_keys:list")}">API keys</a>' in html
    html = as_marketer.get(reverse("api_keys:list")).content.decode()
    assert 'aria-current="page" href="/accounts/api-keys/">API keys</a>' in html
    # The user menu's link to the account is marked current on it, as on the other tabs.
    assert re.search(r'class="nav-link app-user"[^>]*aria-current="page"', html)


def test_making_a_key_asks_for_the_password_again_even_right_after_signing_in(client, marketer):
    # A sign-in by the login form: allauth counts only a password given again as fresh.
    signed_in = client.post(
        reverse("account_login"), {"login": marketer.username, "password": PASSWORD}
    )
    assert signed_in.status_code == 302
    asked = client.get(reverse("api_keys:create"))
    assert asked.status_code == 302
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    assert "next=" + reverse("api_keys:create").replace("/", "%2F") in asked["Location"]
    refused = client.post(reverse("api_keys:create"), FORM)
    assert refused.status_code == 302
    assert refused["Location"].startswith(reverse("account_reauthenticate"))
    assert not ApiKey.objects.exists()


def test_a_password_given_more_than_ten_minutes_ago_is_asked_again(as_marketer, settings):
    reauthenticate(as_marketer)
    _reauthenticated_long_ago(as_marketer, settings.ACCOUNT_REAUTHENTICATION_TIMEOUT - 60)
    assert as_marketer.get(reverse("api_keys:create")).status_code == 200
    _reauthenticated_long_ago(as_marketer, 61)
    asked = as_marketer.post(reverse("api_keys:create"), FORM)
    assert asked.status_code == 302
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    assert not ApiKey.objects.exists()


def test_a_form_sent_when_the_password_was_due_is_done_once_it_is_given(as_marketer):
    asked = as_marketer.post(reverse("api_keys:create"), FORM)
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    done = as_marketer.post(asked["Location"], {"password": PASSWORD})
    # allauth replays the suspended form after the password: the key is shown in its answer.
    assert done.status_code == 200
    shown = SECRET.search(done.content.decode())
    assert shown and ApiKey.objects.get().name == "CRM export"
    assert shown.group(0) not in str(dict(as_marketer.session.items()))


def test_right_after_the_password_a_key_is_made_and_shown_once(as_marketer, marketer, caplog):
    with caplog.at_level(logging.DEBUG):
        secret, answer = _make(as_marketer)
    key = ApiKey.objects.get()
    assert (key.user, key.name, key.scopes) == (marketer, "CRM export", ["read"])
    assert 85 < (key.expires_at - key.created_at).days <= 90
    assert secret.startswith(key.prefix)
    assert "you will not see it again" in answer.content.decode()
    assert "no-store" in answer["Cache-Control"]
    # Nowhere but in that answer: not a log line, not the session, not a cookie.
    assert secret not in caplog.text
    assert secret not in str(dict(as_marketer.session.items()))
    assert all(secret not in morsel.value for morsel in as_marketer.cookies.values())
    # The next page loads show its prefix only.
    for name in ("api_keys:list", "api_keys:create"):
        html = as_marketer.get(reverse(name)).content.decode()
        assert secret not in html and secret[len(key.prefix) :] not in html
    listed = as_marketer.get(reverse("api_keys:list")).content.decode()
    assert f"{key.prefix}…</code>" in listed
    assert "CRM export" in listed and ">alive<" in listed
    event = AuditEvent.objects.get(kind=Kind.API_KEY_CREATED)
    assert event.actor == marketer and event.detail["key"] == key.prefix
    assert secret not in str(event.detail)


def test_the_key_made_on_the_page_works_against_the_api(as_marketer, client, spring):
    secret, _ = _make(as_marketer, scopes=["read", "reports"])
    answer = ApiClient(client, secret).get("/campaigns")
    assert answer.status_code == 200, answer.content
    assert ApiKey.objects.get().last_used_at is not None


def test_a_key_may_never_expire_and_have_every_scope(as_marketer):
    _make(as_marketer, scopes=["send", "read", "reports"], expires="never")
    key = ApiKey.objects.get()
    assert key.expires_at is None and key.scopes == ["send", "read", "reports"]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"name": "  "}, "This field is required"),
        ({"scopes": []}, "Tick at least one scope."),
        ({"scopes": ["admin"]}, "Select a valid choice"),
        ({"expires": "100000"}, "Select a valid choice"),
    ],
)
def test_the_form_says_what_is_wrong_and_makes_no_key(as_marketer, form, error):
    reauthenticate(as_marketer)
    answer = as_marketer.post(reverse("api_keys:create"), {**FORM, **form})
    assert answer.status_code == 200
    assert error in answer.content.decode()
    assert not SECRET.search(answer.content.decode())
    assert not ApiKey.objects.exists()


def test_the_list_says_which_keys_are_alive_revoked_or_expired(as_marketer, marketer):
    alive = api_key_create(user=marketer, name="alive-one", scopes="read").api_key
    gone = api_key_create(user=marketer, name="revoked-one", scopes="read").api_key
    ApiKey.objects.filter(pk=gone.pk).update(revoked_at="2026-01-01T00:00:00Z")
    old = api_key_create(user=marketer, name="expired-one", scopes="read", expires_days=1).api_key
    ApiKey.objects.filter(pk=old.pk).update(expires_at="2026-01-01T00:00:00Z")
    html = as_marketer.get(reverse("api_keys:list")).content.decode()
    for key, state in ((alive, "alive"), (gone, "revoked"), (old, "expired")):
        row = re.search(rf'<tr id="api-key-{key.pk}">.*?</tr>', html, re.S)
        assert row and f">{state}<" in row.group(0), (state, row)
    # A revoked key has nothing left to revoke.
    assert reverse("api_keys:revoke", args=[gone.pk]) not in html
    assert reverse("api_keys:revoke", args=[alive.pk]) in html


def test_revoking_asks_first_and_the_post_refuses_the_key_at_once(as_marketer, marketer, client):
    new = api_key_create(user=marketer, name="crm", scopes="read")
    api = ApiClient(client, new.secret)
    url = reverse("api_keys:revoke", args=[new.api_key.pk])
    asked = as_marketer.get(url)
    assert asked.status_code == 200
    assert 'method="post"' in asked.content.decode()
    assert "csrfmiddlewaretoken" in asked.content.decode()
    assert api.get("/campaigns").status_code == 200
    done = as_marketer.post(url)
    assert done.status_code == 302 and done["Location"] == reverse("api_keys:list")
    assert api.get("/campaigns").status_code == 401
    event = AuditEvent.objects.get(kind=Kind.API_KEY_REVOKED)
    assert event.actor == marketer and event.detail["key"] == new.api_key.prefix
    listed = as_marketer.get(reverse("api_keys:list")).content.decode()
    assert "is revoked" in listed and ">revoked<" in listed


def test_the_revoking_form_needs_its_csrf_token(marketer):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(marketer, backend=BACKEND)
    key = api_key_create(user=marketer, name="crm", scopes="read").api_key
    assert strict.post(reverse("api_keys:revoke", args=[key.pk])).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_nobody_revokes_or_sees_another_persons_key_on_their_own_page(as_marketer, manager, client):
    theirs = api_key_create(user=manager, name="manager-crm", scopes="read")
    url = reverse("api_keys:revoke", args=[theirs.api_key.pk])
    assert as_marketer.get(url).status_code == 404
    assert as_marketer.post(url).status_code == 404
    assert "manager-crm" not in as_marketer.get(reverse("api_keys:list")).content.decode()
    assert ApiClient(client, theirs.secret).get("/campaigns").status_code != 401
    theirs.api_key.refresh_from_db()
    assert theirs.api_key.revoked_at is None


def test_an_admin_sees_a_persons_keys_on_their_team_page_and_revokes_one(
    client, admin_user, marketer, spring
):
    from django.test import Client

    new = api_key_create(user=marketer, name="crm", scopes="read")
    client.force_login(admin_user, backend=BACKEND)
    page = client.get(reverse("accounts:person", args=[marketer.pk])).content.decode()
    card = re.search(r'<div class="card" id="api-keys">.*?</table>', page, re.S)
    assert card and f"{new.api_key.prefix}…</code>" in card.group(0)
    url = reverse("accounts:person_key_revoke", args=[marketer.pk, new.api_key.pk])
    assert url in card.group(0)
    assert client.get(url).status_code == 200
    api = ApiClient(Client(), new.secret)
    assert api.get("/campaigns").status_code == 200
    done = client.post(url)
    assert done.status_code == 302
    assert done["Location"] == reverse("accounts:person", args=[marketer.pk]) + "#api-keys"
    assert api.get("/campaigns").status_code == 401
    assert AuditEvent.objects.get(kind=Kind.API_KEY_REVOKED).actor == admin_user
    # The key of another person is not found under this person's address.
    own = api_key_create(user=admin_user, name="admin-crm", scopes="read").api_key
    wrong = reverse("accounts:person_key_revoke", args=[marketer.pk, own.pk])
    assert client.post(wrong).status_code == 404


def test_a_person_without_keys_has_the_card_say_so(client, admin_user, marketer):
    client.force_login(admin_user, backend=BACKEND)
    page = client.get(reverse("accounts:person", args=[marketer.pk])).content.decode()
    assert "has made no API key" in page


@pytest.mark.parametrize("role", ["marketer", "manager", "outsider"])
def test_no_one_but_an_admin_revokes_from_the_team_page(client, cast, role):
    person = cast["marketer"] if role != "marketer" else cast["manager"]
    key = api_key_create(user=person, name="crm", scopes="read").api_key
    client.force_login(cast[role], backend=BACKEND)
    url = reverse("accounts:person_key_revoke", args=[person.pk, key.pk])
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None
