"""Attacks on the spending controls: paths around the budget or the schedule that the
services must close."""

from __future__ import annotations

from datetime import UTC, date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from rewards.models import Batch, Send
from rewards.services.controls import batch_reschedule, batches_start_due, budget_month_of
from rewards.services.sending import batch_retry_failed
from tests.sending.test_controls import controls, make


def _last_month() -> date:
    first = budget_month_of(timezone.now())
    return budget_month_of(datetime_of(first) - timedelta(days=1))


def datetime_of(day: date):
    from datetime import datetime

    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_failed_rows_of_a_past_month_cannot_be_sent_again_around_this_months_budget(
    campaign, marketer
):
    """Last month's failed rows gave last month's budget back; sent again now they go out
    this month, so last month's room must not let them past this month's budget."""
    controls(campaign, monthly_budget=5)
    old = make(campaign, 5, by=marketer, prefix="old")
    Batch.objects.filter(pk=old.pk).update(budget_month=_last_month())
    Send.objects.filter(batch=old).update(state=Send.State.FAILED)
    make(campaign, 5, by=marketer, prefix="now")  # this month's budget, all used
    with pytest.raises(ValidationError):
        batch_retry_failed(batch=old, actor=marketer)
    assert old.sends.filter(state=Send.State.FAILED).count() == 5


def test_a_scheduled_batch_of_a_campaign_disabled_since_does_not_start(campaign, marketer):
    batch = make(campaign, 2, by=marketer, send_at=timezone.now() + timedelta(hours=1))
    controls(campaign, enabled=False)
    assert batches_start_due(now=timezone.now() + timedelta(hours=2)) == 0
    batch.refresh_from_db()
    assert batch.state == Batch.State.SCHEDULED


def test_a_scheduled_batch_of_a_campaign_disabled_since_is_not_rescheduled_to_now(
    campaign, marketer
):
    batch = make(campaign, 2, by=marketer, send_at=timezone.now() + timedelta(hours=1))
    controls(campaign, enabled=False)
    with pytest.raises(ValidationError, match="disabled"):
        batch_reschedule(batch=batch, actor=marketer, send_at=None)
    batch.refresh_from_db()
    assert batch.state == Batch.State.SCHEDULED


def _passcode_reads(queries) -> list[str]:
    return [q["sql"] for q in queries if '"campaigns_campaign"."passcode"' in q["sql"]]


def test_approving_and_rescheduling_never_load_the_passcode(campaign, marketer, manager):
    """The refreshed batch forgot its campaign (loaded without the passcode), so the audit
    line loaded it again, passcode and all: a lost key would stop a decision."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from campaigns.models import Approval
    from rewards.services.controls import batch_approve

    controls(campaign, approval=Approval.ALWAYS)
    batch = make(campaign, 2, by=marketer, send_at=timezone.now() + timedelta(hours=1))
    batch = Batch.objects.defer("campaign__passcode").select_related("campaign").get(pk=batch.pk)
    with CaptureQueriesContext(connection) as approving:
        batch_approve(batch=batch, actor=manager)
    assert _passcode_reads(approving.captured_queries) == []
    batch = Batch.objects.defer("campaign__passcode").select_related("campaign").get(pk=batch.pk)
    with CaptureQueriesContext(connection) as moving:
        batch_reschedule(batch=batch, actor=marketer, send_at=timezone.now() + timedelta(hours=3))
    assert _passcode_reads(moving.captured_queries) == []


def test_withdrawing_a_batch_awaiting_approval_never_loads_the_passcode(campaign, marketer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from campaigns.models import Approval
    from rewards.services.sending import batch_cancel

    controls(campaign, approval=Approval.ALWAYS)
    batch = make(campaign, 2, by=marketer)
    batch = Batch.objects.defer("campaign__passcode").select_related("campaign").get(pk=batch.pk)
    with CaptureQueriesContext(connection) as withdrawing:
        batch_cancel(batch=batch, actor=marketer)
    assert _passcode_reads(withdrawing.captured_queries) == []


def test_a_budget_notice_of_a_batch_scheduled_into_next_month_tells_that_months_numbers(
    campaign, marketer, monkeypatch
):
    """8 of 10 reserved next month crossed 80 %: the notice said "0 of 10 used this month"."""
    from notices.services import notice_words
    from rewards.services import sending
    from tests.sending.test_controls import next_month_noon

    told: list[tuple[str, dict]] = []
    monkeypatch.setattr(sending, "notice_enqueue", lambda kind, **kw: told.append((kind, kw)))
    controls(campaign, monthly_budget=10)
    next_month = next_month_noon()
    make(campaign, 8, by=marketer, send_at=next_month)
    [(kind, kw)] = told
    assert kind == "budget_80"
    batch = Batch.objects.get(pk=kw["batch_pk"]) if kw.get("batch_pk") else None
    words = notice_words(kind=kind, batch=batch, campaign=campaign)
    assert f"8 of 10 used in {next_month:%B %Y} (80 %)" in words.body
