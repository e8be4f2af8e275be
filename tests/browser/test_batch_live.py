"""A marketer watches a batch with a failing row from its first second, without a reload.

A real Celery worker sends through the sandbox over HTTP, one row per call, and the sandbox
waits LATENCY_MS before each answer, so that every change happens under the test's eyes: the
row's state, the counts, the tabs, the bar, and Cancel going away when the batch ends. What
the page shows is the server's fragment (`batch_detail.html#live`), fetched again by htmx.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from rewards.models import Batch
from rewards.services.sending import RecipientRow, batch_create
from sandbox.models import SandboxReward
from tests.browser.conftest import login_as, screenshot
from tests.worker import celery_worker  # noqa: F401  (the fixture, asked for below)

pytestmark = [pytest.mark.browser, pytest.mark.worker]

# Each create call waits this long: a row is "sending" for 2 s, the page polls every second.
LATENCY_MS = 2000
ONE_ROW_PER_CALL = {"MOKUGIFT_CHUNK_SIZE": "1", "MOKUGIFT_SEND_PARALLELISM": "1"}
ROWS = [
    RecipientRow(row_number=2, recipient="ann@example.com", name="Ann Lee"),
    # Our side can carry it, Mokugift (the sandbox) refuses it: error 112, the row fails.
    RecipientRow(row_number=3, recipient="bob@example", name="Bob Broken"),
    RecipientRow(row_number=4, recipient="cy@example.com", name="Cy Young"),
    RecipientRow(row_number=5, recipient="dee@example.com", name="Dee Dee"),
]
FAILURE = "Email address not valid (Mokugift error 112)"


def test_a_batch_with_a_failing_row_changes_in_place_and_ends_without_cancel(
    page_as, sandbox, marketer, request, settings
):
    settings.MOKUGIFT_CHUNK_SIZE, settings.MOKUGIFT_SEND_PARALLELISM = 1, 1
    campaign = sandbox.campaign(campaign_id="live-1", passcode="live-pass", latency_ms=LATENCY_MS)
    request.getfixturevalue("celery_worker")(env_overrides=ONE_ROW_PER_CALL)
    page = page_as(marketer)

    batch = batch_create(
        campaign=campaign, mode="link", rows=ROWS, created_by=marketer, source=Batch.Source.CSV
    )
    page.goto(f"/rewards/batches/{batch.pk}/")
    # A mark in this document: gone if the page were reloaded.
    page.evaluate("window.stillTheSamePage = true")
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))

    live = page.locator("#batch")
    bob = page.locator('#results tr[data-row="3"]')
    count = {state: page.locator(f"[data-count={state}]") for state in ("sent", "failed")}
    failed_tab = page.locator("[data-tab=failed]")

    # The first second: nothing finished, Cancel offered, no Failed tab yet.
    expect(count["sent"]).to_have_text("0")
    expect(count["failed"]).to_have_text("0")
    expect(bob).to_have_attribute("data-state", re.compile("waiting|sending"))
    expect(failed_tab).to_have_count(0)
    expect(page.locator("#cancel-batch")).to_be_visible()
    expect(live).to_have_attribute("data-finished", "")
    screenshot(page, "first-second")

    # Ann's reward is made: the count moves, Bob's row is still on its way.
    expect(count["sent"]).to_have_text("1", timeout=15_000)
    expect(count["failed"]).to_have_text("0")
    expect(bob).to_have_attribute("data-state", re.compile("waiting|sending"))
    screenshot(page, "one-sent")

    # Bob's row fails under our eyes: its state, its error, the count, a Failed tab with it.
    expect(bob).to_have_attribute("data-state", "failed", timeout=15_000)
    expect(bob).to_contain_text(FAILURE)
    expect(count["failed"]).to_have_text("1")
    expect(failed_tab).to_contain_text("Failed 1")
    expect(page.locator("#failure-reasons")).to_contain_text(f"1 × {FAILURE}")
    # The batch goes on, so Cancel is still there.
    expect(page.locator("#cancel-batch")).to_be_visible()
    screenshot(page, "one-failed")

    # The end: every row finished, Cancel gone, the state says there was a failure.
    expect(live).to_have_attribute("data-finished", "1", timeout=30_000)
    expect(page.locator("#cancel-batch")).to_have_count(0)
    expect(count["sent"]).to_have_text("3")
    expect(page.locator("#batch-state")).to_have_text("Done, 1 failed")
    expect(page.locator("#batch-state [data-outcome=failures]")).to_have_class(
        re.compile("text-warning-emphasis")
    )
    expect(page.locator("#progress-percent")).to_have_text("100 %")
    expect(page.locator("#progress-bar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#results tbody tr[data-state=sent]")).to_have_count(3)
    expect(page.locator("[data-tab=sent]")).to_contain_text("Sent 3")
    expect(page.locator("#retry-failed")).to_have_text("Send the 1 failed row again")
    screenshot(page, "done")

    # All of it without a reload, and the finished fragment no longer polls.
    assert page.evaluate("window.stillTheSamePage") is True
    assert loads == [], loads
    assert live.get_attribute("hx-trigger") is None
    rewards = SandboxReward.objects.filter(campaign__campaign_id="live-1")
    assert sorted(rewards.values_list("recipient_email", flat=True)) == [
        "ann@example.com",
        "cy@example.com",
        "dee@example.com",
    ]

    # The tab shows the failed row alone; on a phone nothing scrolls sideways.
    with page.expect_navigation():
        failed_tab.click()
    expect(page.locator("#results tbody tr")).to_have_count(1)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "failed-tab-phone")

    # The batch list says it too, with the reason counted.
    page.goto("/rewards/batches/")
    listed = page.locator(f'#batches tr[data-batch="{batch.pk}"]')
    expect(listed).to_contain_text("Done, 1 failed")
    expect(listed).to_contain_text(f"1 × {FAILURE}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_without_javascript_the_batch_page_says_it_does_not_update_and_offers_a_reload(
    browser, live_server, marketer, campaign_for_pages
):
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        login_as(page, marketer)
        batch = campaign_for_pages
        page.goto(f"/rewards/batches/{batch.pk}/")
        note = page.locator("#no-live")
        expect(note).to_contain_text("does not update by itself")
        reload = note.get_by_role("link", name="reload it")
        assert reload.get_attribute("href") == f"/rewards/batches/{batch.pk}/"
        with page.expect_navigation():
            reload.click()
        expect(page.locator("#batch")).to_be_visible()
    finally:
        context.close()


@pytest.fixture
def campaign_for_pages(db):
    """A batch still sending (no worker: it stays so), for the page without JavaScript."""
    from campaigns.services import campaign_create

    campaign = campaign_create(
        actor=None, name="Quiet", campaign_id="quiet-1", environment="sandbox", passcode="q-pass"
    )
    batch = Batch.objects.create(campaign=campaign, mode="link", source=Batch.Source.CSV)
    batch.sends.create(row_number=2, recipient="quiet@example.com")
    return batch
