"""The spending controls' services without the network: who approves, the approval rule, the
monthly budgets (what uses them and what gives them back), schedules and their months."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent, Kind
from campaigns.models import Approval, Campaign, CampaignAccess
from rewards.models import Batch, Send
from rewards.services.controls import (
    NOT_AN_APPROVER,
    OWN_BATCH,
    batch_approve,
    batch_decline,
    batch_reschedule,
    batches_start_due,
    budget_month_of,
    budget_state,
    budget_used,
)
from rewards.services.sending import RecipientRow, batch_cancel, batch_create, batch_retry_failed


def rows(n: int, prefix: str = "r") -> list[RecipientRow]:
    return [RecipientRow(row_number=i + 2, recipient=f"{prefix}{i}@example.com") for i in range(n)]


def make(campaign, n: int, *, by=None, prefix: str = "r", **kw) -> Batch:
    return batch_create(
        campaign=campaign,
        mode="email",
        rows=rows(n, prefix),
        created_by=by,
        source=Batch.Source.CSV,
        **kw,
    )


def controls(campaign, **fields) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(**fields)
    campaign.refresh_from_db()
    return campaign


def next_month_noon() -> datetime:
    """Noon on the 2nd of next month (UTC): another month's budget whatever today is."""
    now = timezone.now().astimezone(UTC)
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return first + timedelta(days=1, hours=12)


def states(batch: Batch) -> set[str]:
    return set(batch.sends.values_list("state", flat=True))


# --- Who approves --------------------------------------------------------------------------


@pytest.fixture
def awaiting(campaign, marketer):
    """A batch a marketer made on a campaign that always needs approval."""
    controls(campaign, approval=Approval.ALWAYS)
    return make(campaign, 3, by=marketer)


def test_a_manager_who_did_not_make_the_batch_approves_it(awaiting, manager):
    batch = batch_approve(batch=awaiting, actor=manager)
    assert batch.state == Batch.State.SENDING and batch.decided_by == manager
    assert batch.budget_month == budget_month_of(timezone.now())
    assert AuditEvent.objects.get(kind=Kind.BATCH_APPROVED).actor == manager


def test_the_creator_cannot_approve_their_own_batch_even_as_an_admin(campaign, admin_user):
    controls(campaign, approval=Approval.ALWAYS)
    batch = make(campaign, 2, by=admin_user)
    with pytest.raises(PermissionDenied, match="someone else must approve it"):
        batch_approve(batch=batch, actor=admin_user)
    with pytest.raises(PermissionDenied, match=re.escape(OWN_BATCH)):
        batch_decline(batch=batch, actor=admin_user, reason="mine")
    batch.refresh_from_db()
    assert batch.state == Batch.State.AWAITING_APPROVAL


def test_a_marketer_an_outsider_and_nobody_cannot_approve(
    awaiting, marketer, outsider, django_user_model
):
    other_marketer = django_user_model.objects.create_user(username="max-marketer")
    other_marketer.groups.set(marketer.groups.all())
    for person in (other_marketer, outsider, None):
        with pytest.raises(PermissionDenied, match=re.escape(NOT_AN_APPROVER)):
            batch_approve(batch=awaiting, actor=person)
    awaiting.refresh_from_db()
    assert awaiting.state == Batch.State.AWAITING_APPROVAL and awaiting.budget_month is None


def test_a_manager_without_access_to_the_campaign_cannot_approve(awaiting, manager, autumn):
    access = CampaignAccess.objects.create(user=manager, all_campaigns=False)
    access.campaigns.add(autumn)
    with pytest.raises(PermissionDenied, match=re.escape(NOT_AN_APPROVER)):
        batch_approve(batch=awaiting, actor=manager)
    with pytest.raises(PermissionDenied, match=re.escape(NOT_AN_APPROVER)):
        batch_decline(batch=awaiting, actor=manager, reason="no")
    awaiting.refresh_from_db()
    assert awaiting.state == Batch.State.AWAITING_APPROVAL


def test_an_admin_approves_and_a_second_decision_is_refused(awaiting, admin_user, manager):
    batch_approve(batch=awaiting, actor=admin_user)
    with pytest.raises(ValidationError, match="is sending now"):
        batch_decline(batch=awaiting, actor=manager, reason="too late")


# --- The approval rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "above", "n", "state"),
    [
        (Approval.NEVER, None, 50, Batch.State.SENDING),
        (Approval.ALWAYS, None, 1, Batch.State.AWAITING_APPROVAL),
        (Approval.ABOVE, 3, 3, Batch.State.SENDING),
        (Approval.ABOVE, 3, 4, Batch.State.AWAITING_APPROVAL),
        (Approval.ABOVE, 0, 1, Batch.State.AWAITING_APPROVAL),
    ],
)
def test_the_campaigns_rule_says_which_batches_wait_for_approval(
    campaign, marketer, approval, above, n, state
):
    controls(campaign, approval=approval, approval_above=above)
    batch = make(campaign, n, by=marketer)
    assert batch.state == state
    assert batch.approval_needed == (state == Batch.State.AWAITING_APPROVAL)
    # Awaiting approval, nothing is reserved yet; otherwise the rows are in this month's budget.
    assert (batch.budget_month is None) == (state == Batch.State.AWAITING_APPROVAL)


# --- Budgets -------------------------------------------------------------------------------


def test_a_batch_over_the_monthly_budget_is_refused_with_the_numbers(campaign, marketer):
    controls(campaign, monthly_budget=500)
    make(campaign, 480, by=marketer)
    with pytest.raises(ValidationError) as refused:
        make(campaign, 60, by=marketer, prefix="more")
    assert refused.value.messages == [
        "Over the monthly budget of Spring: 480 of 500 used this month; this batch needs 60. "
        "Nothing was sent."
    ]
    assert Batch.objects.count() == 1 and Send.objects.count() == 480
    make(campaign, 20, by=marketer, prefix="fits")  # exactly to the limit
    assert budget_state(campaign=campaign).left == 0


def test_the_budget_per_person_counts_only_that_persons_batches(campaign, marketer, manager):
    controls(campaign, monthly_budget_per_person=10)
    make(campaign, 8, by=marketer)
    make(campaign, 10, by=manager, prefix="m")  # the manager's own ten
    with pytest.raises(
        ValidationError,
        match=r"Over your monthly budget on Spring: 8 of 10 used "
        r"this month; this batch needs 3\. Nothing was sent\.",
    ):
        make(campaign, 3, by=marketer, prefix="x")
    make(campaign, 2, by=marketer, prefix="y")


def test_failed_and_cancelled_rows_give_their_budget_back(campaign, marketer):
    controls(campaign, monthly_budget=10)
    first = make(campaign, 6, by=marketer, prefix="a")
    second = make(campaign, 4, by=marketer, prefix="b")
    with pytest.raises(ValidationError, match="10 of 10 used"):
        make(campaign, 1, by=marketer, prefix="c")
    Send.objects.filter(batch=first, row_number__lte=4).update(state=Send.State.FAILED)  # 3 rows
    batch_cancel(batch=second, actor=marketer)
    month = budget_month_of(timezone.now())
    assert budget_used(campaign_pk=campaign.pk, month=month) == 3
    make(campaign, 7, by=marketer, prefix="d")
    with pytest.raises(ValidationError, match="10 of 10 used"):
        make(campaign, 1, by=marketer, prefix="e")


def test_a_batch_awaiting_approval_reserves_at_approval_and_is_refused_there_if_over(
    campaign, marketer, manager
):
    controls(campaign, approval=Approval.ABOVE, approval_above=5, monthly_budget=10)
    big = make(campaign, 8, by=marketer)  # waits, reserving nothing
    make(campaign, 5, by=marketer, prefix="s")  # fits, because the big one has not
    with pytest.raises(ValidationError, match=r"5 of 10 used this month; this batch needs 8"):
        batch_approve(batch=big, actor=manager)
    big.refresh_from_db()
    assert big.state == Batch.State.AWAITING_APPROVAL and big.budget_month is None


def test_a_campaign_without_budgets_has_no_limit(campaign, marketer):
    make(campaign, 300, by=marketer)
    state = budget_state(campaign=campaign, person=marketer)
    assert state.limit is None and state.left is None and state.person_left is None


# --- Decline -------------------------------------------------------------------------------


def test_decline_cancels_every_row_and_keeps_the_reason(awaiting, manager):
    batch = batch_decline(batch=awaiting, actor=manager, reason="  Not in December.  ")
    assert batch.state == Batch.State.DECLINED and batch.decline_reason == "Not in December."
    assert states(batch) == {Send.State.CANCELLED}
    assert batch.finished_at is not None and batch.budget_month is None
    with pytest.raises(ValidationError, match="is declined now"):
        batch_approve(batch=batch, actor=manager)


def test_decline_needs_a_reason(awaiting, manager):
    with pytest.raises(ValidationError, match="Say why"):
        batch_decline(batch=awaiting, actor=manager, reason="  ")
    assert states(awaiting) == {Send.State.WAITING}


# --- Schedules -----------------------------------------------------------------------------


def test_approved_before_its_time_it_waits_and_approved_late_it_starts_at_once(
    campaign, marketer, manager
):
    controls(campaign, approval=Approval.ALWAYS)
    later = timezone.now() + timedelta(hours=2)
    early = batch_approve(batch=make(campaign, 2, by=marketer, send_at=later), actor=manager)
    assert early.state == Batch.State.SCHEDULED and early.started_at is None

    late = make(campaign, 2, by=marketer, prefix="l", send_at=later)
    # Its time passes while nobody decides.
    Batch.objects.filter(pk=late.pk).update(send_at=timezone.now() - timedelta(minutes=5))
    late = batch_approve(batch=late, actor=manager)
    assert late.state == Batch.State.SENDING and late.started_at is not None
    assert (
        AuditEvent.objects.filter(kind=Kind.BATCH_APPROVED, batch_pk=late.pk).get().detail["late"]
    )


def test_a_scheduled_batch_starts_when_due_and_not_before(campaign, marketer):
    at = timezone.now() + timedelta(minutes=10)
    batch = make(campaign, 2, by=marketer, send_at=at)
    assert batch.state == Batch.State.SCHEDULED and batch.send_at == at
    assert batches_start_due(now=at - timedelta(seconds=1)) == 0
    assert batches_start_due(now=at) == 1
    batch.refresh_from_db()
    assert batch.state == Batch.State.SENDING and batch.started_at == at


def test_rescheduling_into_another_month_checks_that_months_budget(campaign, marketer):
    controls(campaign, monthly_budget=10)
    next_month = next_month_noon()
    make(campaign, 8, by=marketer, prefix="n", send_at=next_month)
    soon = timezone.now() + timedelta(minutes=30)
    if budget_month_of(soon) != budget_month_of(timezone.now()):
        pytest.skip("half an hour before the month ends")
    this = make(campaign, 5, by=marketer, send_at=soon)  # this month's budget is empty
    assert this.budget_month == budget_month_of(timezone.now())
    with pytest.raises(ValidationError) as refused:
        batch_reschedule(batch=this, actor=marketer, send_at=next_month + timedelta(hours=1))
    assert refused.value.messages == [
        f"Over the monthly budget of Spring: 8 of 10 used in {next_month:%B %Y}; "
        "this batch needs 5. Nothing was sent."
    ]
    this.refresh_from_db()
    assert this.send_at == soon and this.budget_month == budget_month_of(timezone.now())
    # Within its own month it moves freely; and its own rows are not counted twice there.
    batch_reschedule(batch=this, actor=marketer, send_at=soon + timedelta(minutes=10))
    Campaign.objects.filter(pk=campaign.pk).update(monthly_budget=13)
    moved = batch_reschedule(batch=this, actor=marketer, send_at=next_month)
    assert moved.budget_month == budget_month_of(next_month)
    assert moved.state == Batch.State.SCHEDULED
    assert budget_used(campaign_pk=campaign.pk, month=budget_month_of(next_month)) == 13


def test_no_door_schedules_a_send_more_than_a_year_ahead(campaign, marketer):
    soon = timezone.now() + timedelta(hours=1)
    far = timezone.now() + timedelta(days=367)
    with pytest.raises(ValidationError) as refused:
        make(campaign, 2, by=marketer, send_at=far)
    assert refused.value.messages == ["At most a year ahead."]
    assert not Batch.objects.exists()
    scheduled = make(campaign, 2, by=marketer, send_at=soon)
    with pytest.raises(ValidationError) as refused:
        batch_reschedule(batch=scheduled, actor=marketer, send_at=far)
    assert refused.value.messages == ["At most a year ahead."]
    scheduled.refresh_from_db()
    assert scheduled.send_at == soon


def test_only_its_maker_or_an_admin_reschedules_or_cancels_a_scheduled_batch(
    campaign, marketer, manager
):
    batch = make(campaign, 2, by=marketer, send_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(PermissionDenied):
        batch_reschedule(batch=batch, actor=manager, send_at=None)
    with pytest.raises(PermissionDenied):
        batch_cancel(batch=batch, actor=manager)
    assert batch_cancel(batch=batch, actor=marketer) == 2
    batch.refresh_from_db()
    assert batch.state == Batch.State.CANCELLED
    assert batches_start_due(now=timezone.now() + timedelta(days=1)) == 0


def test_a_scheduled_batch_that_needs_approval_tells_the_approvers(campaign, marketer, monkeypatch):
    from rewards.services import sending

    told = []
    monkeypatch.setattr(sending, "notice_enqueue", lambda kind, **kw: told.append(kind))
    controls(campaign, approval=Approval.ALWAYS)
    make(campaign, 2, by=marketer)
    make(campaign, 2, by=marketer, prefix="s", send_at=timezone.now() + timedelta(hours=1))
    assert told == ["approval_needed", "approval_needed"]


def test_sending_failed_rows_again_must_fit_the_budget_they_gave_back(campaign, marketer):
    controls(campaign, monthly_budget=5)
    first = make(campaign, 5, by=marketer, prefix="a")
    Send.objects.filter(batch=first, row_number__lte=4).update(state=Send.State.FAILED)  # 3
    make(campaign, 3, by=marketer, prefix="b")  # the budget they gave back, spent
    with pytest.raises(ValidationError, match=r"5 of 5 used this month; this batch needs 3"):
        batch_retry_failed(batch=first, actor=marketer)
    assert first.sends.filter(state=Send.State.FAILED).count() == 3
    Campaign.objects.filter(pk=campaign.pk).update(monthly_budget=8)
    assert batch_retry_failed(batch=first, actor=marketer) == 3
