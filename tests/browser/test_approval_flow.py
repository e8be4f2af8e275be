"""Maker and checker in two browsers: a marketer uploads 300 rows on a campaign whose batches
above 100 need approval; a manager, in a second browser context, approves; the marketer's page,
open all along, goes live to 100 % without a reload.

A real Celery worker sends through the sandbox over HTTP once the batch is approved; before,
nothing of it reaches the sandbox.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from campaigns.services import campaign_update
from rewards.models import Batch
from sandbox.models import SandboxReward
from tests.browser.conftest import screenshot
from tests.worker import celery_worker  # noqa: F401  (the fixture, asked for below)

pytestmark = [pytest.mark.browser, pytest.mark.worker]

ROWS = 300
UPLOAD = "email,name\n" + "".join(f"guest{i}@example.com,Guest {i}\n" for i in range(ROWS))


def test_a_manager_approves_in_another_browser_and_the_makers_page_goes_to_100(
    page_as, sandbox, marketer, manager, tmp_path, settings, request
):
    settings.UPLOADS_DIR = tmp_path / "uploads"
    campaign = sandbox.campaign(campaign_id="approve-1", passcode="approve-pass")
    campaign_update(campaign=campaign, actor=None, approval="above", approval_above=100)
    request.getfixturevalue("celery_worker")()

    maker = page_as(marketer)
    maker.goto("/rewards/send/")
    maker.select_option("#id_bulk-campaign", str(campaign.pk))
    maker.check("input[name=bulk-mode][value=link]")
    maker.set_input_files(
        "#id_bulk-file", {"name": "guests.csv", "mimeType": "text/csv", "buffer": UPLOAD.encode()}
    )
    with maker.expect_navigation():
        maker.get_by_role("button", name="Preview").click()
    expect(maker.get_by_test_id("passed-rows")).to_have_text(str(ROWS))
    expect(maker.locator("#controls-note")).to_contain_text("more than 100 rewards")
    screenshot(maker, "preview-says-approval")
    with maker.expect_navigation():
        maker.click("#confirm-send")
    assert re.search(r"/rewards/batches/\d+/$", maker.url)
    batch = Batch.objects.get()
    expect(maker.locator("#approval-panel")).to_contain_text("Awaiting approval")
    expect(maker.locator("#approve-batch")).to_have_count(0)
    expect(maker.locator("#progress-percent")).to_have_text("0 %")
    maker.evaluate("window.stillTheSamePage = true")
    screenshot(maker, "awaiting-approval")

    checker = page_as(manager)
    expect(checker.locator("#approvals-count")).to_have_text("1")
    with checker.expect_navigation():
        checker.click("[data-nav=approvals]")
    screenshot(checker, "approvals")
    with checker.expect_navigation():
        checker.locator(f'tr[data-batch="{batch.pk}"] a.btn').click()
    expect(checker.locator("#approval-rows")).to_have_text(f"{ROWS} rewards")
    assert SandboxReward.objects.count() == 0  # nothing was sent while it waited
    screenshot(checker, "review")
    checker.once("dialog", lambda dialog: dialog.accept())
    with checker.expect_navigation():
        checker.click("#approve-batch")
    expect(checker.locator(".alert-success")).to_contain_text(f"Batch #{batch.pk} approved")

    # The maker's page, never reloaded, follows it to the end.
    expect(maker.locator("#approval-panel")).to_have_count(0, timeout=15_000)
    expect(maker.locator("#progress-percent")).to_have_text("100 %", timeout=60_000)
    expect(maker.locator("[data-count=sent]")).to_have_text(str(ROWS))
    expect(maker.locator("#approved-by")).to_contain_text(manager.get_username())
    assert maker.evaluate("window.stillTheSamePage") is True
    screenshot(maker, "sent-in-full")
    assert SandboxReward.objects.count() == ROWS
