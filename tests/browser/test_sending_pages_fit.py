"""The sending pages and the live parts at phone width (390 x 844) and at 1280 x 800: nothing
makes the document wider than the window, and each is saved as a screenshot to look at."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.services import campaign_create
from rewards.models import Batch, Send, SyncRun
from rewards.services.sending import api_error_words
from tests.browser.conftest import login_as

WIDTHS = [(390, 844), (1280, 800)]
LONG = "a-very-long-recipient-address-that-goes-on-and-on@example-of-a-long-domain.com"


@pytest.fixture
def batches(db, marketer):
    campaign = campaign_create(
        actor=None, name="Spring", campaign_id="spring-fit", environment="sandbox", passcode="p"
    )
    failed = Batch.objects.create(
        campaign=campaign,
        mode="link",
        source="csv",
        state="done",
        created_by=marketer,
        filename="a-long-file-name-for-the-spring-campaign-2026.csv",
    )
    Send.objects.bulk_create(
        Send(
            batch=failed,
            row_number=n + 2,
            recipient=LONG if n == 0 else f"r{n}@example.com",
            state="sent" if n % 3 else "failed",
            remote_id=f"RW-{n:012d}" if n % 3 else "",
            url=f"https://sandbox.example/rewards/{n:016d}/" if n % 3 else "",
            error_code=None if n % 3 else 105,
            error_message="" if n % 3 else api_error_words(code=105),
            sent_at=timezone.now(),
        )
        for n in range(12)
    )
    single = Batch.objects.create(
        campaign=campaign, mode="link", source="single", state="sending", created_by=marketer
    )
    single.sends.create(row_number=1, recipient=LONG, state="waiting")
    return failed, single


@pytest.mark.parametrize(("width", "height"), WIDTHS)
def test_the_sending_pages_fit_the_window(page_as, marketer, batches, width, height):
    failed, single = batches
    page = page_as(marketer)
    page.set_viewport_size({"width": width, "height": height})
    for path in [
        "/rewards/send/",
        "/rewards/batches/",
        f"/rewards/batches/{failed.pk}/",
        f"/rewards/batches/{failed.pk}/?state=failed",
        f"/rewards/batches/{single.pk}/",
    ]:
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{path} is {wide} px wide at {width} px"  # (goto saved it)
    page.goto(f"/rewards/batches/{failed.pk}/")
    expect(page.locator("#batch-state")).to_have_text("Done, 4 failed")
    expect(page.locator("#failure-reasons")).to_contain_text(
        "4 × No moku-coins left (Mokugift error 105)"
    )


@pytest.mark.parametrize(("width", "height"), WIDTHS)
def test_the_sync_status_fits_the_window(page_as, manager, batches, width, height):
    failed, _ = batches
    SyncRun.objects.create(campaign=failed.campaign, year=2026, month=5, rewards_read=7)
    page = page_as(manager)
    page.set_viewport_size({"width": width, "height": height})
    page.goto("/rewards/")
    expect(page.locator("#sync-summary")).to_contain_text("syncing 2026-05…")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_without_javascript_the_sync_status_says_it_does_not_update_and_offers_a_reload(
    browser, live_server, manager, batches
):
    failed, _ = batches
    SyncRun.objects.create(campaign=failed.campaign, year=2026, month=5, rewards_read=7)
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        login_as(page, manager)
        page.goto("/rewards/?q=bob")
        note = page.locator("#sync-no-live")
        expect(note).to_contain_text("does not update by itself")
        with page.expect_navigation():
            note.get_by_role("link", name="reload").click()
        assert page.url.endswith("/rewards/?q=bob")
    finally:
        context.close()
