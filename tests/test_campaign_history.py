"""The campaign history in words: each audit row becomes sentences a person reads ("Enabled:
no → yes", "Mokugift campaign ID set to uxtrees", "Passcode changed"), never field names and
Python values."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import Kind
from audit.services import audit_record
from campaigns.selectors import campaign_history_in_words
from campaigns.services import (
    CheckOutcome,
    campaign_check_record,
    campaign_create,
    campaign_passcode_replace,
    campaign_set_enabled,
    campaign_update,
    campaigns_rotate_encryption_keys,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(admin_user):
    return campaign_create(
        actor=admin_user,
        name="UX trees",
        campaign_id="uxtrees",
        environment="sandbox",
        passcode="Secret-of-the-UX-trees",
    )


def sentences(campaign) -> list[list[str]]:
    """Each entry's sentences, oldest first."""
    return [entry.sentences for entry in reversed(campaign_history_in_words(campaign=campaign))]


def test_a_new_campaign_reads_as_what_it_was_set_to(campaign, admin_user):
    [created] = campaign_history_in_words(campaign=campaign)
    assert (created.what, created.actor) == ("Created", admin_user.username)
    assert created.sentences == [
        "Display name set to UX trees",
        "Mokugift campaign ID set to uxtrees",
        "Environment set to Sandbox",
        "Enabled: yes",
        "Passcode set",
    ]


def test_changes_read_as_old_to_new_in_the_forms_words(campaign, admin_user):
    campaign_update(
        campaign=campaign,
        actor=admin_user,
        campaign_id="uxtrees-2",
        environment="live",
        notes="For the autumn letter",
    )
    campaign_update(campaign=campaign, actor=admin_user, notes="For the winter letter")
    campaign_update(campaign=campaign, actor=admin_user, notes="")
    assert sentences(campaign)[1:] == [
        [
            "Mokugift campaign ID: uxtrees → uxtrees-2",
            "Environment: Sandbox → Live",
            "Notes set",
        ],
        ["Notes changed"],
        ["Notes cleared"],
    ]


def test_enabling_disabling_and_the_passcode_read_as_sentences(campaign, admin_user):
    campaign_set_enabled(campaign=campaign, actor=admin_user, enabled=False)
    campaign_set_enabled(campaign=campaign, actor=admin_user, enabled=True)
    campaign_passcode_replace(campaign=campaign, actor=admin_user, passcode="New-secret")
    campaigns_rotate_encryption_keys()
    history = campaign_history_in_words(campaign=campaign)
    assert [entry.what for entry in history] == [
        "Passcode re-encrypted under a new key",
        "Passcode replaced",
        "Enabled",
        "Disabled",
        "Created",
    ]
    assert sentences(campaign)[1:] == [
        ["Enabled: yes → no"],
        ["Enabled: no → yes"],
        ["Passcode changed"],
        ["Passcode re-encrypted under the newest key; the passcode itself is unchanged"],
    ]
    assert history[0].actor == "command line"


@pytest.mark.parametrize(
    ("ok", "message", "sentence"),
    [
        (True, "All good.", "Accepted: All good."),
        (
            False,
            "Incorrect Passcode (Mokugift error 102)",
            "Refused: Incorrect Passcode (Mokugift error 102)",
        ),
        (
            None,
            "read timeout (mokugift.example)",
            "Could not check: read timeout (mokugift.example)",
        ),
    ],
)
def test_a_connection_check_reads_as_its_verdict_and_words(campaign, ok, message, sentence):
    outcome = CheckOutcome(ok=ok, message=message, at=timezone.now())
    campaign_check_record(campaign=campaign, actor=None, outcome=outcome)
    [checked, _created] = campaign_history_in_words(campaign=campaign)
    assert checked.what == "Connection checked"
    assert checked.sentences == [sentence]


def test_no_sentence_shows_a_python_value_or_a_field_name(campaign, admin_user):
    campaign_update(campaign=campaign, actor=admin_user, name="UX trees 2", enabled=False)
    audit_record(kind=Kind.CAMPAIGN_UPDATED, campaign=campaign, detail={"budget": [None, 5]})
    words = " ".join(s for entry in sentences(campaign) for s in entry)
    for python in ("None", "True", "False", "[", "{", "campaign_id", "_"):
        assert python not in words, python
    assert "Budget set to 5" in words
