"""A marketer uploads an Excel workbook whose headers name no column we know, says in the
preview which column is which, and sends: at phone width and at desktop width.

The workbook was made by LibreOffice (tests/sending/files/make.sh). A real Celery worker sends
through the sandbox over HTTP.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from sandbox.models import SandboxReward
from tests.browser.conftest import screenshot
from tests.worker import celery_worker  # noqa: F401  (the fixture, asked for below)

pytestmark = [pytest.mark.browser, pytest.mark.worker]

WORKBOOK = Path(__file__).parents[1] / "sending" / "files" / "unknown-headers.xlsx"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 800)])
def test_a_marketer_maps_the_columns_of_an_xlsx_in_the_preview_and_sends(
    page_as, sandbox, marketer, tmp_path, settings, request, width, height
):
    settings.UPLOADS_DIR = tmp_path / "uploads"
    campaign = sandbox.campaign(campaign_id=f"map-{width}", passcode="map-passcode")
    request.getfixturevalue("celery_worker")()
    page = page_as(marketer)
    page.set_viewport_size({"width": width, "height": height})

    page.goto("/rewards/send/")
    page.select_option("#id_bulk-campaign", str(campaign.pk))
    page.check("input[name=bulk-mode][value=link]")
    page.set_input_files(
        "#id_bulk-file",
        {"name": "clients.xlsx", "mimeType": XLSX, "buffer": WORKBOOK.read_bytes()},
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Preview").click()

    # The preview asks, from the first rows, instead of refusing the file.
    columns = page.locator("#columns")
    expect(columns).to_contain_text("No email column found")
    expect(page.locator("#sample-rows")).to_contain_text("Prénom et nom")
    expect(page.locator("#sample-rows")).to_contain_text("Zoë Müller")
    expect(page.locator("#confirm-send")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, "asks-for-columns")

    # Its guess: the addresses are in column A, under a header row.
    expect(page.locator("#id_recipient")).to_have_value("0")
    expect(page.locator("#id_header")).to_be_checked()
    expect(page.locator("#id_recipient option:checked")).to_have_text("Column A: Courriel")
    page.select_option("#id_name", label="Column B: Prénom et nom")
    with page.expect_navigation():
        page.get_by_role("button", name="Read these columns").click()

    expect(page.get_by_test_id("read-as")).to_contain_text(
        "Read as an Excel workbook, the sheet “unknown-headers”; the recipients from column A."
    )
    expect(page.get_by_test_id("total-rows")).to_have_text("2")
    expect(page.get_by_test_id("passed-rows")).to_have_text("2")
    first = page.locator("#first-rows tbody tr")
    expect(first).to_have_count(2)
    expect(first.first).to_contain_text("Zoë Müller")
    expect(first.last).to_contain_text("François Lefèvre")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, "columns-chosen")

    with page.expect_navigation():
        page.click("#confirm-send")
    assert re.search(r"/rewards/batches/\d+/$", page.url)
    expect(page.locator("[data-count=sent]")).to_have_text("2", timeout=30_000)
    rewards = SandboxReward.objects.filter(campaign__campaign_id=f"map-{width}")
    assert sorted(rewards.values_list("recipient_email", flat=True)) == [
        "francois@example.com",
        "zoe@example.com",
    ]
    screenshot(page, "sent")
