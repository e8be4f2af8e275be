"""`manage.py campaign_set`: a campaign's spending controls from a shell, in its history."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent, Kind
from campaigns.models import Approval, Campaign
from campaigns.selectors import campaign_history_in_words
from tests.conftest import campaign_make


def run(*args) -> str:
    out = io.StringIO()
    call_command("campaign_set", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def campaign(db):
    return campaign_make("Spring", "spring-1")


def test_it_sets_approval_above_a_number_and_both_budgets(campaign):
    out = run(
        "--campaign=spring-1",
        "--approval=above:100",
        "--monthly-budget=500",
        "--budget-per-person=50",
    )
    campaign.refresh_from_db()
    assert (campaign.approval, campaign.approval_above) == (Approval.ABOVE, 100)
    assert (campaign.monthly_budget, campaign.monthly_budget_per_person) == (500, 50)
    assert "above 100 rewards" in out and "monthly budget: 500 rewards" in out
    assert campaign.needs_approval(rows=101) and not campaign.needs_approval(rows=100)


def test_it_records_the_change_in_the_campaigns_history_by_the_command_line(campaign):
    run(f"--campaign={campaign.pk}", "--approval=always", "--monthly-budget=500")
    event = AuditEvent.objects.get(campaign=campaign, kind=Kind.CAMPAIGN_UPDATED)
    assert event.actor is None
    assert event.detail["monthly_budget"] == [None, 500]
    assert event.detail["approval"] == ["never", "always"]
    sentences = campaign_history_in_words(campaign=campaign)[0].sentences
    assert "Approval by a second person: never → always" in sentences
    assert "Monthly budget set to 500" in sentences


def test_none_lifts_a_budget_and_never_clears_the_approval_number(campaign):
    run("--campaign=spring-1", "--approval=above:10", "--monthly-budget=5", "--budget-per-person=2")
    out = run(
        "--campaign=spring-1",
        "--approval=never",
        "--monthly-budget=none",
        "--budget-per-person=NONE",
    )
    campaign.refresh_from_db()
    assert campaign.approval == Approval.NEVER and campaign.approval_above is None
    assert campaign.monthly_budget is None and campaign.monthly_budget_per_person is None
    assert "monthly budget: no limit" in out and "per person: no limit" in out


def test_setting_what_is_already_set_says_no_change_and_records_nothing(campaign):
    run("--campaign=spring-1", "--monthly-budget=5")
    out = run("--campaign=spring-1", "--monthly-budget=5")
    assert "no change" in out
    assert AuditEvent.objects.filter(campaign=campaign, kind=Kind.CAMPAIGN_UPDATED).count() == 1


def test_a_disabled_campaign_may_be_set_too(campaign):
    Campaign.objects.filter(pk=campaign.pk).update(enabled=False)
    run("--campaign=spring-1", "--monthly-budget=0")
    campaign.refresh_from_db()
    assert campaign.monthly_budget == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--approval=sometimes"], r"--approval takes never, always or above:N"),
        (["--approval=above"], r"--approval takes never, always or above:N"),
        (["--approval=always:3"], r"--approval takes never, always or above:N"),
        (["--approval=above:-1"], r"--approval above:N takes a whole number"),
        (["--monthly-budget=lots"], r"--monthly-budget takes a whole number .* not 'lots'"),
        (["--monthly-budget=-5"], r"--monthly-budget takes a whole number"),
        (["--budget-per-person=1.5"], r"--budget-per-person takes a whole number"),
        (["--budget-per-person=²"], r"--budget-per-person takes a whole number"),
        ([], r"Nothing to set: give --approval, --monthly-budget or --budget-per-person"),
    ],
)
def test_it_refuses_a_bad_option_naming_it_and_changes_nothing(campaign, args, words):
    with pytest.raises(CommandError, match=words):
        run("--campaign=spring-1", *args)
    campaign.refresh_from_db()
    assert campaign.approval == Approval.NEVER and campaign.monthly_budget is None
    assert not AuditEvent.objects.filter(campaign=campaign, kind=Kind.CAMPAIGN_UPDATED).exists()


def test_it_refuses_an_unknown_campaign(campaign):
    with pytest.raises(CommandError, match="No campaign with the Mokugift ID"):
        run("--campaign=nope", "--monthly-budget=5")


def test_the_service_refuses_approval_above_without_the_number(campaign):
    from django.core.exceptions import ValidationError

    from campaigns.services import campaign_update

    with pytest.raises(ValidationError, match="needs the number"):
        campaign_update(campaign=campaign, actor=None, approval=Approval.ABOVE)
    campaign.refresh_from_db()
    assert campaign.approval == Approval.NEVER
