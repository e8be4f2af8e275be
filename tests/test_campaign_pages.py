"""The campaign pages, as an admin uses them: the passcode goes in and never comes back out."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from audit.models import AuditEvent, Kind
from campaigns.models import Campaign
from campaigns.services import campaign_create
from rewards.models import Batch
from tests.client.server import closed_port
from tests.conftest import reauthenticate

pytestmark = pytest.mark.django_db

PASSCODE = "Tr33s-4-Everyone-passcode"
NEW_PASSCODE = "Second-Secret-of-the-forest"
NEW = {"passcode": NEW_PASSCODE, "passcode_again": NEW_PASSCODE, "save_anyway": "1"}


@pytest.fixture(autouse=True)
def _no_mokugift(settings):
    # These tests are about the pages; the connection check, against the real sandbox, is in
    # test_campaign_check.py. Here nothing answers (the check "could not check", at once), and
    # the forms say "Save anyway".
    settings.MOKUGIFT_SANDBOX_URL = f"http://127.0.0.1:{closed_port()}/sandbox/api/"
    settings.MOKUGIFT_LIVE_URL = f"http://127.0.0.1:{closed_port()}/api/"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user, backend="allauth.account.auth_backends.AuthenticationBackend")
    reauthenticate(client)
    return client


@pytest.fixture
def campaign(admin_user):
    return campaign_create(
        actor=admin_user,
        name="Spring",
        campaign_id="spring-1",
        environment="sandbox",
        passcode=PASSCODE,
        notes="First one",
    )


def form_data(**changes) -> dict:
    data = {
        "name": "Autumn",
        "campaign_id": "autumn-1",
        "environment": "sandbox",
        "enabled": "on",
        "notes": "",
        "passcode": PASSCODE,
        "save_anyway": "1",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def assert_no_passcode(response, *passcodes: str) -> None:
    page = response.content.decode()
    for passcode in passcodes or (PASSCODE, NEW_PASSCODE):
        assert passcode not in page
        assert passcode[:8] not in page


def test_an_admin_creates_a_campaign_through_the_form(admin_client, admin_user):
    response = admin_client.post(reverse("campaigns:create"), form_data(notes="For autumn"))
    campaign = Campaign.objects.get(campaign_id="autumn-1")
    assert response.status_code == 302
    assert response["Location"] == reverse("campaigns:detail", args=[campaign.pk])
    assert campaign.passcode == PASSCODE
    assert (campaign.name, campaign.environment, campaign.enabled, campaign.notes) == (
        "Autumn",
        "sandbox",
        True,
        "For autumn",
    )
    assert campaign.created_by == admin_user

    event = campaign.audit_events.get(kind=Kind.CAMPAIGN_CREATED)
    assert event.actor == admin_user
    assert event.detail["credential_replaced"] is True
    assert event.detail["name"] == [None, "Autumn"]
    assert event.at is not None


def test_the_list_shows_only_that_a_passcode_is_set(admin_client, campaign, admin_user):
    campaign_create(
        actor=admin_user, name="Empty", campaign_id="e-1", environment="live", passcode=""
    )
    response = admin_client.get(reverse("campaigns:list"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Spring" in page and "spring-1" in page
    assert "<td>set</td>" in page
    assert "not set" in page
    assert_no_passcode(response)


def test_the_list_costs_a_fixed_number_of_queries(
    admin_client, admin_user, django_assert_max_num_queries
):
    for i in range(10):
        campaign_create(
            actor=admin_user, name=f"C{i}", campaign_id=f"c-{i}", environment="live", passcode="p"
        )
    with django_assert_max_num_queries(8):
        assert admin_client.get(reverse("campaigns:list")).status_code == 200


def test_a_form_with_an_error_never_shows_the_passcode_again(admin_client, campaign):
    # The same campaign ID again in the same environment: the form comes back with the error.
    response = admin_client.post(
        reverse("campaigns:create"), form_data(campaign_id="spring-1", passcode=NEW_PASSCODE)
    )
    assert response.status_code == 200
    assert "This campaign ID is already set up in that environment." in (response.content.decode())
    assert 'type="password"' in response.content.decode()
    assert_no_passcode(response)
    assert Campaign.objects.count() == 1


def test_a_campaign_id_is_unique_within_its_environment_only(admin_client, campaign):
    response = admin_client.post(
        reverse("campaigns:create"), form_data(campaign_id="spring-1", environment="live")
    )
    assert response.status_code == 302
    assert set(Campaign.objects.values_list("environment", "campaign_id")) == {
        ("sandbox", "spring-1"),
        ("live", "spring-1"),
    }


def test_editing_records_what_changed_and_leaves_the_passcode(admin_client, campaign, admin_user):
    url = reverse("campaigns:edit", args=[campaign.pk])
    form = admin_client.get(url)
    assert form.status_code == 200
    assert 'value="Spring"' in form.content.decode()
    assert 'name="passcode"' not in form.content.decode()

    data = form_data(name="Spring 2027", campaign_id="spring-1", notes="First one", passcode=None)
    response = admin_client.post(url, data)
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.name == "Spring 2027"
    assert campaign.passcode == PASSCODE
    event = campaign.audit_events.get(kind=Kind.CAMPAIGN_UPDATED)
    assert event.actor == admin_user
    assert event.detail == {"name": ["Spring", "Spring 2027"]}
    history = admin_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "Display name: Spring → Spring 2027" in history


def test_editing_to_a_campaign_id_taken_in_that_environment_is_refused(admin_client, campaign):
    other = campaign_create(
        actor=None, name="Other", campaign_id="other-1", environment="sandbox", passcode="p"
    )
    response = admin_client.post(
        reverse("campaigns:edit", args=[other.pk]),
        form_data(name="Other", campaign_id="spring-1", passcode=None),
    )
    assert response.status_code == 200
    assert "already set up in that environment" in response.content.decode()
    other.refresh_from_db()
    assert other.campaign_id == "other-1"


def test_an_edit_that_changes_nothing_records_no_change(admin_client, campaign):
    data = form_data(name="Spring", campaign_id="spring-1", notes="First one", passcode=None)
    assert admin_client.post(reverse("campaigns:edit", args=[campaign.pk]), data).status_code == 302
    # "created", and the check the save made; no "updated".
    actions = list(campaign.audit_events.values_list("kind", flat=True))
    assert actions == [Kind.CAMPAIGN_CHECKED, Kind.CAMPAIGN_CREATED]


def test_an_admin_replaces_the_passcode(admin_client, campaign, admin_user):
    url = reverse("campaigns:passcode", args=[campaign.pk])
    mismatch = admin_client.post(
        url, {"passcode": NEW_PASSCODE, "passcode_again": "other", "save_anyway": "1"}
    )
    assert mismatch.status_code == 200
    assert "The two passcodes differ." in mismatch.content.decode()
    assert_no_passcode(mismatch)
    campaign.refresh_from_db()
    assert campaign.passcode == PASSCODE

    response = admin_client.post(url, NEW)
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.passcode == NEW_PASSCODE
    event = campaign.audit_events.filter(kind=Kind.PASSCODE_REPLACED).get()
    assert event.actor == admin_user
    assert event.detail == {"credential_replaced": True}


def test_disable_asks_first_and_says_what_it_stops(admin_client, campaign, admin_user):
    sending = Batch.objects.create(
        campaign=campaign, mode="email", source=Batch.Source.CSV, state=Batch.State.SENDING
    )
    paused = Batch.objects.create(
        campaign=campaign, mode="email", source=Batch.Source.CSV, state=Batch.State.PAUSED
    )
    url = reverse("campaigns:disable", args=[campaign.pk])

    confirm = admin_client.get(url)

    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "Disable Spring?" in page
    assert "new sends from this dashboard" in page
    assert "the syncing of its rewards from Mokugift" in page
    # What the code really does: the worker keeps sending a batch already under way.
    assert "batches already sending: they carry on until they end" in page
    assert reverse("rewards:batch_detail", args=[sending.pk]) in page
    assert reverse("rewards:batch_detail", args=[paused.pk]) in page
    campaign.refresh_from_db()
    assert campaign.enabled is True  # a GET changes nothing

    assert admin_client.post(url)["Location"] == reverse("campaigns:detail", args=[campaign.pk])
    campaign.refresh_from_db()
    assert campaign.enabled is False
    event = campaign.audit_events.first()
    assert (event.kind, event.actor, event.detail) == (
        Kind.CAMPAIGN_DISABLED,
        admin_user,
        {"enabled": [True, False]},
    )


def test_enable_is_a_post_and_is_recorded(admin_client, campaign, admin_user):
    admin_client.post(reverse("campaigns:disable", args=[campaign.pk]))
    url = reverse("campaigns:enable", args=[campaign.pk])
    assert admin_client.get(url).status_code == 405
    campaign.refresh_from_db()
    assert campaign.enabled is False

    assert admin_client.post(url).status_code == 302
    campaign.refresh_from_db()
    assert campaign.enabled is True
    actions = list(campaign.audit_events.values_list("kind", "actor", "detail"))
    assert actions[:2] == [
        (Kind.CAMPAIGN_ENABLED, admin_user.pk, {"enabled": [False, True]}),
        (Kind.CAMPAIGN_DISABLED, admin_user.pk, {"enabled": [True, False]}),
    ]


def test_the_pages_offer_disable_as_a_link_to_its_page_and_enable_as_a_form(admin_client, campaign):
    disable = reverse("campaigns:disable", args=[campaign.pk])
    enable = reverse("campaigns:enable", args=[campaign.pk])
    for page in (reverse("campaigns:list"), reverse("campaigns:detail", args=[campaign.pk])):
        html = admin_client.get(page).content.decode()
        assert f'href="{disable}"' in html and enable not in html
    admin_client.post(disable)
    for page in (reverse("campaigns:list"), reverse("campaigns:detail", args=[campaign.pk])):
        html = admin_client.get(page).content.decode()
        assert f'action="{enable}"' in html and disable not in html


def test_a_campaign_whose_passcode_no_key_reads_can_still_be_disabled_and_edited(
    admin_client, campaign, settings
):
    # The key the passcode was stored under is gone: the sending pauses and says to come here.
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert admin_client.post(reverse("campaigns:disable", args=[campaign.pk])).status_code == 302
    edit = reverse("campaigns:edit", args=[campaign.pk])
    assert admin_client.get(edit).status_code == 200
    data = form_data(name="Spring (key lost)", campaign_id="spring-1", passcode=None)
    del data["save_anyway"]
    # The check cannot read the passcode either, and says so before anything is saved.
    unchecked = admin_client.post(edit, data)
    assert "cannot be read with the current encryption keys" in unchecked.content.decode()
    assert admin_client.post(edit, {**data, "save_anyway": "1"}).status_code == 302
    saved = Campaign.objects.defer("passcode").get(pk=campaign.pk)
    assert (saved.name, saved.enabled, saved.last_check_ok) == ("Spring (key lost)", False, None)
    assert campaign.audit_events.filter(kind=Kind.CAMPAIGN_DISABLED).exists()


def test_the_edit_form_cannot_disable_a_campaign_past_its_confirmation(admin_client, campaign):
    edit = reverse("campaigns:edit", args=[campaign.pk])
    assert 'name="enabled"' not in admin_client.get(edit).content.decode()
    data = form_data(name="Spring", campaign_id="spring-1", notes="First one", passcode=None)
    del data["enabled"]
    assert admin_client.post(edit, data).status_code == 302
    campaign.refresh_from_db()
    assert campaign.enabled is True


def test_enable_and_disable_go_back_to_a_page_of_ours_only(admin_client, campaign):
    listing = reverse("campaigns:list")
    detail = reverse("campaigns:detail", args=[campaign.pk])
    disable = reverse("campaigns:disable", args=[campaign.pk])
    enable = reverse("campaigns:enable", args=[campaign.pk])
    assert admin_client.post(disable, {"next": listing})["Location"] == listing
    assert admin_client.post(enable, {"next": listing})["Location"] == listing
    # Another site in `next` would make the form an open redirect.
    away = admin_client.post(enable, {"next": "https://evil.example/phish"})
    assert away["Location"] == detail


def test_the_detail_page_shows_the_history_and_never_the_passcode(
    admin_client, campaign, admin_user
):
    url = reverse("campaigns:passcode", args=[campaign.pk])
    admin_client.post(url, NEW)
    admin_client.post(reverse("campaigns:disable", args=[campaign.pk]))

    response = admin_client.get(reverse("campaigns:detail", args=[campaign.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    for label in ("Created", "Passcode replaced", "Disabled", "Connection checked"):
        assert f"<strong>{label}</strong>" in page
    for sentence in (
        "Passcode changed",
        "Enabled: yes → no",
        "Mokugift campaign ID set to spring-1",
    ):
        assert f'<li class="text-break">{sentence}</li>' in page
    assert admin_user.username in page
    assert "set (never shown)" in page
    assert_no_passcode(response)


def test_no_campaign_page_and_no_audit_record_holds_the_passcode(admin_client, campaign):
    url = reverse("campaigns:passcode", args=[campaign.pk])
    admin_client.post(url, NEW)
    pages = [
        reverse("campaigns:list"),
        reverse("campaigns:create"),
        reverse("campaigns:detail", args=[campaign.pk]),
        reverse("campaigns:edit", args=[campaign.pk]),
        reverse("campaigns:passcode", args=[campaign.pk]),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert_no_passcode(response)
    audit = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert PASSCODE not in audit and NEW_PASSCODE not in audit


def test_the_api_base_url_follows_the_environment_from_settings(admin_client, admin_user, settings):
    sandbox_url = f"http://127.0.0.1:{closed_port()}/sandbox-api/"
    live_url = f"http://127.0.0.1:{closed_port()}/live-api/"
    settings.MOKUGIFT_SANDBOX_URL, settings.MOKUGIFT_LIVE_URL = sandbox_url, live_url
    # A URL posted with the form is not a field: it is ignored.
    admin_client.post(
        reverse("campaigns:create"),
        form_data(environment="live", api_base_url="http://169.254.169.254/"),
    )
    live = Campaign.objects.get()
    assert live.api_base_url == live_url
    page = admin_client.get(reverse("campaigns:detail", args=[live.pk])).content.decode()
    assert live_url in page
    assert "169.254.169.254" not in page

    admin_client.post(
        reverse("campaigns:edit", args=[live.pk]),
        form_data(environment="sandbox", passcode=None),
    )
    live.refresh_from_db()
    assert live.api_base_url == sandbox_url


def test_adding_a_campaign_or_replacing_a_passcode_asks_for_the_password_again(
    client, admin_user, campaign
):
    client.force_login(admin_user, backend="allauth.account.auth_backends.AuthenticationBackend")
    for url in (reverse("campaigns:create"), reverse("campaigns:passcode", args=[campaign.pk])):
        asked = client.post(url, {"passcode": "x", "passcode_again": "x", **form_data()})
        assert asked.status_code == 302, url
        assert asked["Location"].startswith(reverse("account_reauthenticate")), url
    assert Campaign.objects.count() == 1
    # The password, and the page opens; for 10 minutes nothing is asked again.
    reauthenticate(client)
    assert client.get(reverse("campaigns:create")).status_code == 200


@pytest.mark.parametrize("role", ["marketer", "manager", "outsider"])
def test_only_admins_may_touch_campaigns(client, campaign, role, request):
    user = request.getfixturevalue(role)
    client.force_login(user, backend="allauth.account.auth_backends.AuthenticationBackend")
    assert client.post(reverse("campaigns:create"), form_data()).status_code == 403
    url = reverse("campaigns:passcode", args=[campaign.pk])
    assert client.post(url, {"passcode": "x", "passcode_again": "x"}).status_code == 403
    for action in ("disable", "enable", "check"):
        assert client.post(reverse(f"campaigns:{action}", args=[campaign.pk])).status_code == 403
    assert client.get(reverse("campaigns:disable", args=[campaign.pk])).status_code == 403
    assert Campaign.objects.count() == 1
    campaign.refresh_from_db()
    assert (campaign.passcode, campaign.enabled) == (PASSCODE, True)
    assert campaign.audit_events.count() == 1
