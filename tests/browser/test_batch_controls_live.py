"""The batch page's live part polls every 5 s while a batch awaits approval or its time: what
a person is typing in its forms (a decline reason, a new time) must survive the polls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Approval
from campaigns.services import campaign_create
from rewards.models import Batch
from tests.sending.test_controls import controls, make

pytestmark = [pytest.mark.browser]


@pytest.fixture
def campaign(db):
    return campaign_create(
        actor=None, name="Spring", campaign_id="spring-1", environment="sandbox", passcode="p-1"
    )


def test_a_decline_reason_being_typed_survives_the_polls(page_as, campaign, marketer, manager):
    controls(campaign, approval=Approval.ALWAYS)
    batch = make(campaign, 2, by=marketer)
    page = page_as(manager)
    page.goto(f"/rewards/batches/{batch.pk}/")
    page.fill("#id_reason", "Wrong list: these are last year's guests")
    with page.expect_response(lambda r: f"/batches/{batch.pk}/status" in r.url, timeout=15_000):
        pass
    page.wait_for_timeout(300)
    expect(page.locator("#id_reason")).to_have_value("Wrong list: these are last year's guests")
    # The kept field is still the form's: declining sends what was typed.
    with page.expect_navigation():
        page.click("#decline-batch")
    expect(page.locator("#decline-reason")).to_have_text("Wrong list: these are last year's guests")
    batch.refresh_from_db()
    assert batch.state == Batch.State.DECLINED


def test_a_new_time_being_typed_survives_the_polls(page_as, campaign, marketer):
    batch = make(campaign, 2, by=marketer, send_at=timezone.now() + timedelta(days=2))
    page = page_as(marketer)
    page.goto(f"/rewards/batches/{batch.pk}/")
    page.fill("#id_send_at", "2027-01-15T09:30")
    with page.expect_response(lambda r: f"/batches/{batch.pk}/status" in r.url, timeout=15_000):
        pass
    page.wait_for_timeout(300)
    expect(page.locator("#id_send_at")).to_have_value("2027-01-15T09:30")
