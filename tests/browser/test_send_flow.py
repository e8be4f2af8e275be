"""A marketer sends rewards from a CSV in the browser, from the upload to the results file.

A real Celery worker sends through the sandbox over HTTP: nothing is stubbed between the
button and the reward.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from sandbox.models import SandboxReward
from tests.browser.conftest import screenshot
from tests.worker import celery_worker  # noqa: F401  (the fixture, asked for below)

pytestmark = [pytest.mark.browser, pytest.mark.worker]

UPLOAD = (
    "Email Address,Full Name\n"
    "ann@example.com,Ann Lee\n"
    "bob@example,Bob Broken\n"  # flagged: not an address
    "cy@example.com,Cy Young\n"
    "dee@example.com,=cmd|' /C calc'!A0\n"  # a name a spreadsheet would run, kept as text
    "eve@example.com,Eve Adams\n"
)
PASSCODE = "flow-passcode-never-shown"
SENT_TO = ["ann@example.com", "cy@example.com", "dee@example.com", "eve@example.com"]


def test_a_marketer_uploads_previews_confirms_watches_and_downloads_the_results(
    page_as, sandbox, marketer, tmp_path, settings, request
):
    settings.UPLOADS_DIR = tmp_path / "uploads"
    campaign = sandbox.campaign(campaign_id="flow-1", passcode=PASSCODE)
    request.getfixturevalue("celery_worker")()
    page = page_as(marketer)

    page.goto("/rewards/send/")
    page.select_option("#id_bulk-campaign", str(campaign.pk))
    page.check("input[name=bulk-mode][value=link]")
    page.set_input_files(
        "#id_bulk-file",
        {"name": "spring.csv", "mimeType": "text/csv", "buffer": UPLOAD.encode()},
    )
    screenshot(page, "upload-chosen")
    with page.expect_navigation():
        page.get_by_role("button", name="Preview").click()

    # The preview: the count, the flagged row with its row number and column, nothing sent.
    expect(page.get_by_test_id("total-rows")).to_have_text("5")
    expect(page.get_by_test_id("passed-rows")).to_have_text("4")
    flagged = page.locator("#problems tbody tr")
    expect(flagged).to_have_count(1)
    expect(flagged.first).to_contain_text("3")
    expect(flagged.first).to_contain_text("Email Address")
    expect(flagged.first).to_contain_text("not a valid email address")
    assert SandboxReward.objects.count() == 0
    assert PASSCODE not in page.content()
    screenshot(page, "preview")

    with page.expect_navigation():
        page.click("#confirm-send")
    assert re.search(r"/rewards/batches/\d+/$", page.url)

    # The progress bar fills without a reload from us; the page reloads itself once at the end
    # to show the results table with every row's outcome.
    expect(page.locator("#progress-percent")).to_have_text("100 %", timeout=30_000)
    expect(page.locator("#batch[data-finished='1']")).to_have_count(1, timeout=10_000)
    expect(page.locator("#progress-bar")).to_have_attribute("style", re.compile(r"width: 100%"))
    expect(page.locator("[data-count=sent]")).to_have_text("4")
    expect(page.locator("#results tbody tr[data-state=sent]")).to_have_count(4)
    expect(page.get_by_text("1 row of the upload left out")).to_be_visible()
    assert PASSCODE not in page.content()
    screenshot(page, "done")

    with page.expect_download() as download_info:
        page.click("#results-csv")
    download = download_info.value
    assert download.suggested_filename.endswith("-results.csv")
    body = tmp_path / "results.csv"
    download.save_as(body)
    text = body.read_text("utf-8-sig")
    assert PASSCODE not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    # The whole batch: the row left out at upload too, with its reason, in the file's order.
    assert [row["state"] for row in rows] == ["sent", "left-out", "sent", "sent", "sent"]
    assert rows[1]["row"] == "3" and "not a valid email address" in rows[1]["error"]
    del rows[1]

    rewards = {
        r.recipient_email: r for r in SandboxReward.objects.filter(campaign__campaign_id="flow-1")
    }
    assert sorted(rewards) == sorted(SENT_TO)  # exactly one reward each, none for row 3
    assert [row["recipient"] for row in rows] == SENT_TO
    for row in rows:
        reward = rewards[row["recipient"]]
        assert row["state"] == "sent"
        assert row["reward_id"] == reward.remote_id
        assert row["url"] == reward.url
    assert rows[2]["name"] == "'=cmd|' /C calc'!A0"


def test_one_reward_shows_its_id_and_link_as_they_become_known(page_as, sandbox, marketer, request):
    campaign = sandbox.campaign(campaign_id="one-1", passcode="one-pass")
    request.getfixturevalue("celery_worker")()
    page = page_as(marketer)

    page.goto("/rewards/send/")
    page.select_option("#id_one-campaign", str(campaign.pk))
    page.check("input[name=one-mode][value=link]")
    page.fill("#id_one-recipient", "fay@example.com")
    page.fill("#id_one-name", "Fay Wong")
    with page.expect_navigation():
        page.get_by_role("button", name="Send the reward").click()

    # No reload from us: the page polls and fills in the reward as the worker makes it.
    expect(page.locator("#single-state")).to_have_text("Sent", timeout=20_000)
    reward = SandboxReward.objects.get(campaign__campaign_id="one-1")
    assert reward.recipient_email == "fay@example.com"
    expect(page.locator("#single-remote-id")).to_have_text(reward.remote_id)
    expect(page.locator("#single-url")).to_have_value(reward.url)
    expect(page.locator("#copy-url")).to_be_visible()
    page.locator("#copy-url").click()
    expect(page.locator("#copy-url")).to_have_text("Copied")
