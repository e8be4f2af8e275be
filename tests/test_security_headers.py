"""Headers every page is sent: the Content-Security-Policy, and no-store behind the login."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.services import campaign_create
from rewards.models import Batch
from tests.mirror.helpers import mirror_add

pytestmark = pytest.mark.django_db


def _policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


@pytest.fixture
def made(admin_user):
    import datetime as dt

    campaign = campaign_create(
        actor=admin_user,
        name="Spring",
        campaign_id="spring-1",
        environment="sandbox",
        passcode="not-a-real-passcode",
    )
    batch = Batch.objects.create(
        campaign=campaign, mode="link", source=Batch.Source.SINGLE, created_by=admin_user
    )
    reward = mirror_add(campaign, dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    return {"campaign": campaign, "batch": batch, "reward": reward}


def test_every_kind_of_page_forbids_inline_script(client, admin_user, made):
    anonymous = [client.get(reverse("account_login")), client.get("/no-such-page/")]
    client.force_login(admin_user)
    logged_in = [
        client.get(reverse("home")),
        client.get(reverse("rewards:batch_detail", args=[made["batch"].pk])),
        client.get(reverse("rewards:report")),
        client.get("/no-such-page/"),
    ]
    for response in anonymous + logged_in:
        policy = _policy(response)
        # Only our own files: no 'unsafe-inline', no nonce, no other origin.
        assert policy["script-src"] == ["'self'"], response.request["PATH_INFO"]
        assert policy["object-src"] == ["'none'"]
        assert policy["base-uri"] == ["'none'"]
        assert policy["default-src"] == ["'self'"]


PAGES_BEHIND_THE_LOGIN = [
    ("home", {}),
    ("campaigns:list", {}),
    ("campaigns:detail", {"pk": "campaign"}),
    ("rewards:send", {}),
    ("rewards:batch_list", {}),
    ("rewards:batch_detail", {"pk": "batch"}),
    ("rewards:batch_status", {"pk": "batch"}),
    ("rewards:batch_results_csv", {"pk": "batch"}),
    ("rewards:list", {}),
    ("rewards:list_csv", {}),
    ("rewards:reward_detail", {"pk": "reward"}),
    ("rewards:report", {}),
    ("rewards:report_xlsx", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), PAGES_BEHIND_THE_LOGIN)
def test_a_page_behind_the_login_is_never_stored_by_a_browser_or_proxy(
    client, admin_user, made, name, kwargs
):
    client.force_login(admin_user)
    url = reverse(name, kwargs={key: made[value].pk for key, value in kwargs.items()})
    response = client.get(url)
    assert response.status_code == 200
    assert "no-store" in response.headers.get("Cache-Control", "")


def test_the_not_found_page_of_a_logged_in_person_is_not_stored_either(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "no-store" in response.headers.get("Cache-Control", "")
