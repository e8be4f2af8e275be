"""A marketer meets rows of unknown outcome and a row paid twice on the batch page, on a
desktop and on a phone, and decides about the unknown rows herself."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from rewards.models import Send, SendEvent
from rewards.services.chunk import batch_send_chunk
from rewards.services.sending import RecipientRow, batch_create
from tests.browser.conftest import screenshot
from tests.worker import isolated_broker  # noqa: F401  (the fixture, asked for below)

pytestmark = pytest.mark.browser

PASSCODE = "unknown-passcode-never-shown"


def test_a_marketer_reads_when_unknown_rows_are_decided_and_marks_some_failed(
    page_as, sandbox, marketer, settings, request
):
    request.getfixturevalue("isolated_broker")
    settings.MOKUGIFT_CHUNK_SIZE = 4
    campaign = sandbox.campaign(
        campaign_id="unk-1", passcode=PASSCODE, fault="drop-before", fault_rate=1.0
    )
    rows = [RecipientRow(row_number=i + 2, recipient=f"u{i}@example.com") for i in range(4)]
    batch = batch_create(campaign=campaign, mode="email", rows=rows, source="csv")
    batch_send_chunk(batch_id=batch.pk)
    # One row of the batch was paid twice (as reconciliation records it).
    Send.objects.filter(batch=batch, row_number=5).update(
        state="sent",
        remote_id="first-reward",
        duplicate_remote_id="late-reward",
        paid_twice_at=timezone.now(),
    )

    page = page_as(marketer)
    page.goto(f"/rewards/batches/{batch.pk}/")
    expect(page.locator("#paid-twice-banner")).to_contain_text("late-reward")
    card = page.locator("#unknown-rows")
    expect(card).to_contain_text("3 rows of unknown outcome")
    expect(page.locator("#unknown-decided")).to_contain_text("UTC")

    page.get_by_text("You checked elsewhere? Decide yourself").click()
    page.check("input[name=action][value=failed]")
    page.fill("#unknown-rows-input", "2-3")
    page.fill("#unknown-reason", "Mokugift support: never made")
    screenshot(page, "deciding")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#unknown-decide")
    expect(page.locator(".messages")).to_contain_text("2 rows of unknown outcome marked failed")
    expect(card).to_contain_text("1 row of unknown outcome")
    assert (
        SendEvent.objects.filter(send__batch=batch, to_state="failed", actor=marketer).count() == 2
    )

    # On a phone the page does not scroll sideways because of the new parts.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/rewards/batches/{batch.pk}/")
    card_right = page.evaluate(
        "document.getElementById('unknown-rows').getBoundingClientRect().right"
    )
    assert card_right <= 390, card_right
    screenshot(page, "phone")

    # The list people look at first: every row paid twice, on any batch.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/rewards/batches/paid-twice/")
    expect(page.locator("#paid-twice tbody tr")).to_have_count(1)
    expect(page.locator("#paid-twice")).to_contain_text("late-reward")
