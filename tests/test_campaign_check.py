"""The connection check of a campaign's credentials, against the sandbox over real HTTP.

A create call with no recipient: Mokugift checks the campaign ID, the passcode, whether the
campaign is enabled and not expired, and only then the recipient, so 111 means "accepted" and
nothing is made. Here: the client's check_campaign, `manage.py campaign_check` (exit status and
words), the check on save (create, edit, passcode) with its "Save anyway", the button, and that
no check ever makes a reward at the sandbox or shows the passcode.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse

from audit.models import AuditEvent, Kind
from campaigns.models import Campaign
from campaigns.services import campaign_check, campaign_create
from rewards.mokugift import ApiError, MokugiftClient
from sandbox.models import SandboxReward
from sandbox.services import sandbox_campaign_save
from tests.client.bodies import REWARD_URL, failed
from tests.client.server import body, closed_port, delay, local_server, status
from tests.conftest import reauthenticate
from tests.test_commands import command_env

pytestmark = pytest.mark.django_db(transaction=True)

PASSCODE = "Right-Passcode-of-the-Oaks"
WRONG = "Wrong-Passcode-of-the-Elms"


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user, backend="allauth.account.auth_backends.AuthenticationBackend")
    reauthenticate(client)
    return client


@pytest.fixture
def oaks(sandbox):
    """A sandbox campaign "oaks" and the dashboard's campaign for it, with the right passcode."""
    return sandbox.campaign("oaks", PASSCODE)


def rewards_at_sandbox() -> int:
    return SandboxReward.objects.count()


def unsaved(campaign_id: str, passcode: str) -> Campaign:
    return Campaign(campaign_id=campaign_id, environment="sandbox", passcode=passcode)


# --- The sandbox and the client -----------------------------------------------------------


@pytest.mark.parametrize(
    ("campaign_id", "passcode", "sandbox_fields", "code"),
    [
        ("oaks", PASSCODE, {}, 111),
        ("no-such-campaign", PASSCODE, {}, 101),
        ("oaks", WRONG, {}, 102),
        ("oaks", PASSCODE, {"enabled": False}, 103),
        ("oaks", PASSCODE, {"expires": dt.date(2020, 1, 31)}, 104),
        # The coins are counted after the recipient: an empty account is still accepted.
        ("oaks", PASSCODE, {"coins": 0}, 111),
    ],
)
def test_the_sandbox_answers_a_create_with_no_recipient_by_the_campaign_first(
    sandbox, oaks, campaign_id, passcode, sandbox_fields, code
):
    if sandbox_fields:
        sandbox_campaign_save(campaign_id="oaks", **sandbox_fields)
    before = rewards_at_sandbox()
    client = MokugiftClient(base_url=sandbox.api_url, campaign_id=campaign_id, passcode=passcode)

    answer = client.check_campaign()

    assert (answer.accepted, answer.code) == (code == 111, code)
    assert rewards_at_sandbox() == before


def test_every_create_call_with_no_recipient_is_refused_with_111_and_makes_nothing(sandbox, oaks):
    # Not only the call check_campaign makes: the document says so of every create call.
    client = MokugiftClient(base_url=sandbox.api_url, campaign_id="oaks", passcode=PASSCODE)
    calls = [
        ("reward", "email", False),
        ("reward_url", "link", False),
        ("reward_url2", "link-id", False),
        ("multi_rewards", "email", True),
        ("multi_reward_urls", "link", True),
        ("multi_reward_urls2", "link-id", True),
    ]
    for call, mode, multi in calls:
        with pytest.raises(ApiError) as caught:
            client._create(call=call, mode=mode, multi=multi, data={}, asked=1)
        assert caught.value.code == 111, call
    assert rewards_at_sandbox() == 0


# --- The service ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "sandbox_fields", "ok", "words"),
    [
        ("right", {}, True, "Mokugift knows the campaign ID, the passcode is right"),
        ("wrong-id", {}, False, "Invalid campaign ID (Mokugift error 101)"),
        ("wrong-passcode", {}, False, "Incorrect Passcode (Mokugift error 102)"),
        ("disabled", {"enabled": False}, False, "Campaign disabled (Mokugift error 103)"),
    ],
)
def test_campaign_check_records_what_mokugift_says_and_makes_no_reward(
    sandbox, oaks, ref, sandbox_fields, ok, words
):
    if sandbox_fields:
        sandbox_campaign_save(campaign_id="oaks", **sandbox_fields)
    campaign = oaks
    if ref == "wrong-id":
        campaign = campaign_create(
            actor=None,
            name="Typo",
            campaign_id="oaks-typo",
            environment="sandbox",
            passcode=PASSCODE,
        )
    if ref == "wrong-passcode":
        sandbox_campaign_save(campaign_id="oaks", passcode=WRONG + "-at-mokugift")
    before = rewards_at_sandbox()

    outcome = campaign_check(campaign=campaign, actor=None)

    assert rewards_at_sandbox() == before
    assert outcome.ok is ok
    assert words in outcome.message
    saved = Campaign.objects.get(pk=campaign.pk)
    assert (saved.last_check_ok, saved.last_check_message) == (ok, outcome.message)
    assert saved.last_check_at == outcome.at
    event = saved.audit_events.first()
    assert event.kind == Kind.CAMPAIGN_CHECKED
    assert event.detail == {"ok": ok, "message": outcome.message}


def test_a_check_that_gets_no_answer_says_it_could_not_check_not_that_they_are_wrong(
    sandbox, oaks, settings
):
    port = closed_port()
    settings.MOKUGIFT_SANDBOX_URL = f"http://127.0.0.1:{port}/sandbox/api/"
    outcome = campaign_check(campaign=oaks, actor=None)
    assert outcome.ok is None
    assert outcome.verdict == "Could not check"
    assert outcome.message == f"could not connect (127.0.0.1:{port})"
    assert Campaign.objects.get(pk=oaks.pk).last_check_ok is None


def test_a_check_that_times_out_could_not_check(oaks, settings):
    with local_server() as server:
        server.then(delay(3))
        settings.MOKUGIFT_SANDBOX_URL = server.url
        settings.MOKUGIFT_READ_TIMEOUT = 0.5
        outcome = campaign_check(campaign=oaks, actor=None)
    assert outcome.ok is None
    assert outcome.message.startswith("read timeout")
    # What went to the server: a create call with the passcode and no recipient at all.
    [received] = server.received
    assert (received.method, received.path) == ("POST", "/api/reward_url/oaks")
    assert set(received.form) == {"passcode"}


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (status(500), "HTTP 5xx 500 (127.0.0.1:"),
        # 110 or a code a call with no recipient should never get says nothing of the
        # credentials: not a refusal.
        (body(failed(110, "Internal error")), "Internal error (Mokugift error 110)"),
        (body(failed(113, "Invalid parameters")), "Invalid parameters (Mokugift error 113)"),
        # Success would mean a reward for no one: the answer of something that is not Mokugift.
        (body(REWARD_URL), "status Success for a call with no recipient"),
    ],
)
def test_an_answer_that_says_nothing_of_the_credentials_could_not_check(oaks, answer, words):
    with local_server() as server:
        server.then(answer)
        with override_settings(MOKUGIFT_SANDBOX_URL=server.url):
            outcome = campaign_check(campaign=oaks, actor=None)
    assert outcome.ok is None
    assert words in outcome.message


def test_the_passcode_is_in_no_message_log_or_history_of_a_check(
    sandbox, oaks, caplog, admin_client
):
    sandbox_campaign_save(campaign_id="oaks", passcode=WRONG)
    with caplog.at_level(logging.DEBUG):
        outcome = campaign_check(campaign=oaks, actor=None)
        page = admin_client.get(reverse("campaigns:detail", args=[oaks.pk])).content.decode()
    assert outcome.ok is False
    everything = " ".join(
        [
            outcome.message,
            caplog.text,
            page,
            json.dumps(list(AuditEvent.objects.values()), default=str),
        ]
    )
    assert PASSCODE not in everything
    assert PASSCODE[:8] not in everything


# --- manage.py campaign_check ---------------------------------------------------------------


def run_campaign_check(sandbox, ref: str) -> subprocess.CompletedProcess:
    env = command_env()
    env["MOKUGIFT_SANDBOX_URL"] = sandbox.api_url
    return subprocess.run(
        [sys.executable, "manage.py", "campaign_check", "--campaign", ref],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_exits_0_when_mokugift_accepts_the_campaign(sandbox, oaks):
    result = run_campaign_check(sandbox, "oaks")
    assert result.returncode == 0, result.stderr
    assert "accepted: Mokugift knows the campaign ID" in result.stdout
    assert Campaign.objects.get(pk=oaks.pk).last_check_ok is True
    assert rewards_at_sandbox() == 0


def test_the_command_exits_1_with_the_reason_for_a_wrong_passcode(sandbox, oaks):
    sandbox_campaign_save(campaign_id="oaks", passcode=WRONG)
    result = run_campaign_check(sandbox, str(oaks.pk))  # by our own number, too
    assert result.returncode == 1
    assert "refused: Incorrect Passcode (Mokugift error 102)" in result.stderr
    assert PASSCODE not in result.stdout + result.stderr
    assert Campaign.objects.get(pk=oaks.pk).last_check_ok is False
    assert rewards_at_sandbox() == 0


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("wrong-id", "refused: Invalid campaign ID (Mokugift error 101)"),
        ("disabled", "refused: Campaign disabled (Mokugift error 103)"),
        ("no-answer", "could not check: could not connect"),
    ],
)
def test_the_command_fails_with_the_reason_when_mokugift_does_not_accept(
    sandbox, oaks, settings, setup, words
):
    ref = "oaks"
    if setup == "wrong-id":
        campaign_create(
            actor=None,
            name="Typo",
            campaign_id="oaks-typo",
            environment="sandbox",
            passcode=PASSCODE,
        )
        ref = "oaks-typo"
    if setup == "disabled":
        sandbox_campaign_save(campaign_id="oaks", enabled=False)
    if setup == "no-answer":
        settings.MOKUGIFT_SANDBOX_URL = f"http://127.0.0.1:{closed_port()}/sandbox/api/"
    with pytest.raises(CommandError) as caught:
        call_command("campaign_check", "--campaign", ref)
    assert words in str(caught.value)
    assert rewards_at_sandbox() == 0


def test_campaign_add_checks_the_campaign_it_added(sandbox, monkeypatch):
    sandbox_campaign_save(campaign_id="oaks", passcode=PASSCODE)
    args = ["--name", "Oaks", "--environment", "sandbox", "--passcode-stdin"]
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSCODE + "\n"))
    call_command("campaign_add", *args, "--campaign-id", "oaks", stdout=out, stderr=err)
    assert "Connection check: accepted: Mokugift knows the campaign ID" in out.getvalue()
    assert Campaign.objects.get(campaign_id="oaks").last_check_ok is True

    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSCODE + "\n"))
    call_command("campaign_add", *args, "--campaign-id", "oaks-typo", stdout=out, stderr=err)
    assert "Connection check: refused: Invalid campaign ID (Mokugift error 101)" in err.getvalue()
    assert Campaign.objects.get(campaign_id="oaks-typo").last_check_ok is False
    assert rewards_at_sandbox() == 0


def test_the_command_names_a_campaign_it_cannot_find(sandbox):
    with pytest.raises(CommandError, match="No campaign with the Mokugift ID"):
        call_command("campaign_check", "--campaign", "nowhere")


# --- The check on save ----------------------------------------------------------------------


def create_form(**changes) -> dict:
    data = {
        "name": "Oaks",
        "campaign_id": "oaks",
        "environment": "sandbox",
        "enabled": "on",
        "notes": "",
        "passcode": PASSCODE,
    }
    data.update(changes)
    return data


def test_creating_with_the_right_credentials_saves_and_says_they_were_accepted(
    sandbox, admin_client
):
    sandbox_campaign_save(campaign_id="oaks", passcode=PASSCODE)
    response = admin_client.post(reverse("campaigns:create"), create_form(), follow=True)
    campaign = Campaign.objects.get(campaign_id="oaks")
    assert campaign.last_check_ok is True
    page = response.content.decode()
    assert "Mokugift accepts the campaign ID and passcode." in page
    assert "Accepted" in page
    assert rewards_at_sandbox() == 0


@pytest.mark.parametrize(
    ("changes", "sandbox_fields", "words"),
    [
        ({"campaign_id": "oaks-typo"}, {}, "Invalid campaign ID (Mokugift error 101)"),
        ({"passcode": WRONG}, {}, "Incorrect Passcode (Mokugift error 102)"),
        ({}, {"enabled": False}, "Campaign disabled (Mokugift error 103)"),
    ],
)
def test_creating_with_credentials_mokugift_refuses_saves_nothing_until_save_anyway(
    sandbox, admin_client, changes, sandbox_fields, words
):
    sandbox_campaign_save(campaign_id="oaks", passcode=PASSCODE, **sandbox_fields)
    url = reverse("campaigns:create")

    refused = admin_client.post(url, create_form(**changes))

    assert refused.status_code == 200
    page = refused.content.decode()
    assert "Mokugift refuses these credentials: nothing is saved yet" in page
    assert words in page
    assert 'name="save_anyway"' in page
    assert PASSCODE not in page and WRONG not in page
    assert not Campaign.objects.exists()

    saved = admin_client.post(url, {**create_form(**changes), "save_anyway": "1"}, follow=True)
    campaign = Campaign.objects.get()
    assert campaign.last_check_ok is False
    assert campaign.last_check_message == words
    assert f"The connection check says: Refused: {words}" in saved.content.decode()
    assert rewards_at_sandbox() == 0


def test_creating_when_mokugift_cannot_be_asked_offers_save_anyway(sandbox, admin_client, settings):
    settings.MOKUGIFT_SANDBOX_URL = f"http://127.0.0.1:{closed_port()}/sandbox/api/"
    refused = admin_client.post(reverse("campaigns:create"), create_form())
    assert "Mokugift could not be asked: nothing is saved yet" in refused.content.decode()
    assert not Campaign.objects.exists()
    admin_client.post(reverse("campaigns:create"), {**create_form(), "save_anyway": "1"})
    assert Campaign.objects.get().last_check_ok is None


def test_editing_to_a_wrong_campaign_id_is_checked_before_it_is_saved(sandbox, oaks, admin_client):
    url = reverse("campaigns:edit", args=[oaks.pk])
    data = {
        "name": oaks.name,
        "campaign_id": "oaks-typo",
        "environment": "sandbox",
        "enabled": "on",
    }

    refused = admin_client.post(url, data)

    assert "Invalid campaign ID (Mokugift error 101)" in refused.content.decode()
    assert Campaign.objects.get(pk=oaks.pk).campaign_id == "oaks"
    admin_client.post(url, {**data, "campaign_id": "oaks"})
    saved = Campaign.objects.get(pk=oaks.pk)
    assert (saved.campaign_id, saved.last_check_ok) == ("oaks", True)
    admin_client.post(url, {**data, "save_anyway": "1"})
    saved = Campaign.objects.get(pk=oaks.pk)
    assert (saved.campaign_id, saved.last_check_ok) == ("oaks-typo", False)
    assert rewards_at_sandbox() == 0


def test_a_new_passcode_is_checked_before_it_replaces_the_old_one(sandbox, oaks, admin_client):
    url = reverse("campaigns:passcode", args=[oaks.pk])

    refused = admin_client.post(url, {"passcode": WRONG, "passcode_again": WRONG})

    page = refused.content.decode()
    assert "Incorrect Passcode (Mokugift error 102)" in page
    assert "type the passcode again" in page
    assert WRONG not in page
    assert Campaign.objects.get(pk=oaks.pk).passcode == PASSCODE

    sandbox_campaign_save(campaign_id="oaks", passcode=WRONG)  # Mokugift issued a new one
    admin_client.post(url, {"passcode": WRONG, "passcode_again": WRONG})
    saved = Campaign.objects.get(pk=oaks.pk)
    assert (saved.passcode, saved.last_check_ok) == (WRONG, True)
    assert rewards_at_sandbox() == 0


def test_the_check_button_checks_and_the_pages_show_the_last_check(sandbox, oaks, admin_client):
    detail = reverse("campaigns:detail", args=[oaks.pk])
    assert "Never checked" in admin_client.get(detail).content.decode()
    sandbox_campaign_save(campaign_id="oaks", enabled=False)

    response = admin_client.post(reverse("campaigns:check", args=[oaks.pk]), follow=True)

    assert response.redirect_chain[-1][0] == detail
    page = response.content.decode()
    assert "Connection check: Refused: Campaign disabled (Mokugift error 103)" in page
    listing = admin_client.get(reverse("campaigns:list")).content.decode()
    assert "Refused" in listing and "Campaign disabled (Mokugift error 103)" in listing
    assert " ago</time>" in listing
    assert rewards_at_sandbox() == 0


def test_the_check_button_with_htmx_answers_with_the_card_and_the_history_only(
    sandbox, oaks, admin_client
):
    response = admin_client.post(
        reverse("campaigns:check", args=[oaks.pk]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert page.lstrip().startswith('<div class="card h-100" id="connection-check">')
    assert "Accepted" in page and "Mokugift knows the campaign ID" in page
    assert '<div class="card" id="history-card" hx-swap-oob="true">' in page
    assert "Connection checked" in page
    # No message is left for the next page: the card said it.
    listing = admin_client.get(reverse("campaigns:list")).content.decode()
    assert "Connection check: Accepted" not in listing
    assert rewards_at_sandbox() == 0
