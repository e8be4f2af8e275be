"""A manager fills the empty rewards page with the Refresh button, in the browser.

A real Celery worker (without beat, so that nothing but the button can start a sync) reads the
month from the sandbox over HTTP: nothing is stubbed between the button and the table.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from rewards.models import SyncRun
from tests.browser.conftest import screenshot
from tests.mirror.helpers import sandbox_rewards_add
from tests.worker import celery_worker  # noqa: F401  (the fixture, asked for below)

pytestmark = [pytest.mark.browser, pytest.mark.worker]

RECIPIENTS = ["ann@example.com", "bob@example.com", "cy@example.com"]
# Each call to the sandbox waits this long, so that the run stays "running" across a few of the
# page's polls (every 1.5 s) and its progress can be seen, not only its end.
LATENCY_MS = 4000


def _this_month_in_the_sandbox(sandbox, request) -> dt.datetime:
    """Three rewards of this month in a slow sandbox campaign, and a worker to sync them."""
    sandbox.campaign(campaign_id="refresh-1", passcode="refresh-pass", latency_ms=LATENCY_MS)
    # Spread over the part of this month (UTC) already gone, so that none falls in the last
    # month, even on the 1st just after midnight.
    now = timezone.now().astimezone(dt.UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for n, email in enumerate(RECIPIENTS, start=1):
        sandbox_rewards_add("refresh-1", start + (now - start) * n / 4, recipient_email=email)
    request.getfixturevalue("celery_worker")(beat=False)
    return now


def test_a_manager_refreshes_the_empty_rewards_page_and_watches_the_sync_fill_it(
    page_as, sandbox, request
):
    now = _this_month_in_the_sandbox(sandbox, request)
    page = page_as("manager")

    page.goto("/rewards/")
    summary = page.locator("#sync-summary")
    rows = page.locator("#rewards tbody tr")
    expect(rows).to_have_count(0)
    expect(page.locator("p.empty")).to_contain_text("Nothing mirrored yet")
    expect(page.locator("p.empty")).to_contain_text("Refresh")
    expect(summary).to_have_text("Never synced yet.")

    loads = []
    page.on("load", lambda _: loads.append(page.url))
    page.click("#refresh")

    # The button queues the sync and the page stays: it follows the run by polling.
    period = f"{now.year}-{now.month:02d}"
    expect(summary).to_contain_text(f"syncing {period}…", timeout=20_000)
    assert loads == [], "Refresh left the page instead of queueing the sync in place"
    screenshot(page, "syncing")

    # No reload from us: the status says the sync is done, and what it found.
    expect(summary).to_contain_text("last synced", timeout=30_000)
    expect(summary).to_contain_text(f"({len(RECIPIENTS)} new, 0 changed")
    assert loads == [], loads
    # The table is the server's: the status offers to show what the run found (the page does
    # not reload under the reader's eyes).
    page.click("#sync-reload")
    expect(rows).to_have_count(len(RECIPIENTS), timeout=10_000)
    assert len(loads) == 1, loads
    expect(summary.locator(".sync-run[data-outcome=succeeded]")).to_have_count(1)
    expect(page.locator("p.empty")).to_have_count(0)
    expect(rows.locator("td:nth-child(3)")).to_have_text(RECIPIENTS[::-1])  # newest first
    expect(rows.first).to_contain_text("Sandbox refresh-1")
    run = SyncRun.objects.get(campaign__campaign_id="refresh-1")
    assert (run.outcome, run.created, run.year, run.month) == (
        "succeeded", len(RECIPIENTS), now.year, now.month
    )  # fmt: skip
    screenshot(page, "synced")


def test_a_sync_that_ends_over_a_half_typed_filter_offers_its_rewards_and_keeps_the_filter(
    page_as, sandbox, request
):
    _this_month_in_the_sandbox(sandbox, request)
    page = page_as("manager")
    page.goto("/rewards/")
    summary = page.locator("#sync-summary")
    loads = []
    page.on("load", lambda _: loads.append(page.url))

    page.click("#refresh")
    expect(summary).to_contain_text("syncing", timeout=20_000)
    page.fill("#id_q", "bob")  # typed, not yet applied, when the sync ends

    expect(summary).to_contain_text("last synced", timeout=30_000)
    expect(page.locator("#sync-reload")).to_be_visible(timeout=10_000)
    assert loads == [], "the page reloaded over the filter being typed"
    expect(page.locator("#id_q")).to_have_value("bob")

    page.click("button:has-text('Filter')")
    rows = page.locator("#rewards tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("bob@example.com")
