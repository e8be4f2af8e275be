"""The admins' webhook pages: nobody else gets in; the secret is shown once and never again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent, Kind
from tests.conftest import reauthenticate
from webhooks.models import Delivery, Endpoint, Event
from webhooks.services import delivery_attempt, endpoint_create, webhook_emit

pytestmark = pytest.mark.django_db

BACKEND = "allauth.account.auth_backends.AuthenticationBackend"


@pytest.fixture
def as_admin(client, admin_user):
    client.force_login(admin_user, backend=BACKEND)
    return client


@pytest.fixture
def endpoint(receiver):
    return endpoint_create(
        url=receiver.url, description="CRM", events=list(Event.values), enabled=True, actor=None
    )


@pytest.mark.parametrize("who", ["marketer", "manager", "outsider"])
def test_nobody_but_an_admin_reaches_the_webhook_pages(client, cast, endpoint, who):
    client.force_login(cast[who], backend=BACKEND)
    pk = endpoint.endpoint.pk
    for name, args in [
        ("list", []),
        ("create", []),
        ("detail", [pk]),
        ("edit", [pk]),
        ("remove", [pk]),
        ("rotate", [pk]),
    ]:
        assert client.get(reverse(f"webhooks:{name}", args=args)).status_code == 403, name
    assert client.post(reverse("webhooks:remove", args=[pk])).status_code == 403
    assert Endpoint.objects.filter(pk=pk).exists()


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(as_admin, receiver):
    reauthenticate(as_admin)
    response = as_admin.post(
        reverse("webhooks:create"),
        {"url": receiver.url, "description": "CRM", "events": ["batch.finished"], "enabled": "on"},
    )

    assert response.status_code == 200
    endpoint = Endpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()
    assert (
        "no-store" in response.headers["Cache-Control"]
        or "no-cache" in response.headers["Cache-Control"]
    )
    assert AuditEvent.objects.filter(kind=Kind.WEBHOOK_ADDED).count() == 1
    for url in (
        reverse("webhooks:list"),
        reverse("webhooks:detail", args=[endpoint.pk]),
        reverse("webhooks:edit", args=[endpoint.pk]),
        reverse("webhooks:rotate", args=[endpoint.pk]),
    ):
        page = as_admin.get(url)
        assert page.status_code == 200, url
        assert endpoint.secret.removeprefix("whsec_")[:12] not in page.content.decode(), url


def test_an_endpoint_on_a_private_address_is_refused_by_the_form(as_admin, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    reauthenticate(as_admin)
    response = as_admin.post(
        reverse("webhooks:create"),
        {"url": "http://169.254.169.254/latest/", "events": ["batch.finished"], "enabled": "on"},
    )

    assert response.status_code == 200
    assert "metadata address" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_an_admin_rotates_the_secret_and_sees_the_new_one_once(as_admin, endpoint):
    reauthenticate(as_admin)
    response = as_admin.post(reverse("webhooks:rotate", args=[endpoint.endpoint.pk]))

    fresh = Endpoint.objects.get()
    assert fresh.secret != endpoint.secret and fresh.previous_secret == endpoint.secret
    assert fresh.secret in response.content.decode()
    assert endpoint.secret not in response.content.decode()


def test_an_admin_edits_and_removes_an_endpoint(as_admin, endpoint, receiver):
    pk = endpoint.endpoint.pk
    response = as_admin.post(
        reverse("webhooks:edit", args=[pk]),
        {"url": receiver.url + "v2", "events": ["sync.failed"]},
    )
    assert response.status_code == 302
    fresh = Endpoint.objects.get()
    assert (fresh.url, fresh.events, fresh.enabled) == (receiver.url + "v2", ["sync.failed"], False)

    as_admin.post(reverse("webhooks:remove", args=[pk]))
    assert not Endpoint.objects.exists()
    assert AuditEvent.objects.filter(kind=Kind.WEBHOOK_REMOVED).count() == 1


def test_the_endpoint_page_lists_its_deliveries_and_sends_one_again(
    as_admin, endpoint, receiver, django_assert_max_num_queries
):
    for _ in range(3):
        (pk,) = webhook_emit(event=Event.BATCH_PAUSED, data={})
        delivery_attempt(delivery_pk=pk)
    url = reverse("webhooks:detail", args=[endpoint.endpoint.pk])
    with django_assert_max_num_queries(12):
        page = as_admin.get(url).content.decode()
    assert page.count('data-state="delivered"') == 3
    assert "batch.paused" in page

    response = as_admin.post(reverse("webhooks:send_again", args=[pk]))
    assert response.status_code == 302
    assert Delivery.objects.get(pk=pk).state == Delivery.State.PENDING
    delivery_attempt(delivery_pk=pk)
    assert len(receiver.received) == 4
    assert AuditEvent.objects.filter(kind=Kind.WEBHOOK_SENT_AGAIN).count() == 1


def test_the_nav_links_to_the_webhooks_for_admins_only(client, admin_user, marketer):
    link = 'data-nav="webhooks"'
    client.force_login(marketer, backend=BACKEND)
    assert link not in client.get(reverse("notices:list")).content.decode()
    client.force_login(admin_user, backend=BACKEND)
    assert link in client.get(reverse("notices:list")).content.decode()
