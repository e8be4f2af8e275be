"""A manager browses the mirror in the browser: filters, pages, one reward, the CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from playwright.sync_api import expect

from rewards.selectors.mirror import PAGE_SIZE
from tests.browser.conftest import screenshot
from tests.mirror.helpers import mirror_add, send_add

pytestmark = pytest.mark.browser


def test_a_manager_filters_pages_opens_a_reward_and_downloads_the_filter(page_as, marketer):
    from campaigns.models import Campaign

    campaign = Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    for n in range(PAGE_SIZE + 5):
        mirror_add(campaign, start + dt.timedelta(hours=n))
    ours = mirror_add(campaign, start + dt.timedelta(days=20), recipient_email="sally@chan.com")
    ours.send = send_add(campaign, remote_id=ours.remote_id, sent_at=ours.date, by=marketer,
                         name="Sally Chan")  # fmt: skip
    ours.save()
    page = page_as("manager")

    page.goto("/rewards/")
    rows = page.locator("#rewards tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    with page.expect_navigation():
        page.click("#older")
    expect(rows).to_have_count(6)

    # The filters are folded into one line until opened.
    expect(page.locator("#id_q")).to_be_hidden()
    page.click("#filter-box summary")
    page.fill("#id_q", "chan")
    with page.expect_navigation():
        page.click("#filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Sally Chan")
    expect(page.locator("#total")).to_have_text("1 reward for these filters")
    expect(page.locator("#filter-summary")).to_have_text("Recipient: chan")
    screenshot(page, "search")

    with page.expect_download() as download:
        page.click("#download-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    lines = list(csv.reader(io.StringIO(text)))
    assert [line[1] for line in lines[1:]] == [ours.remote_id]

    with page.expect_navigation():
        rows.first.locator("a").click()
    expect(page.locator("#ledger-facts")).to_contain_text("Sally Chan")
    expect(page.locator("#ledger-facts")).to_contain_text("mark-marketer")


DOCUMENT_WIDTH = "() => document.documentElement.scrollWidth"


def test_on_a_phone_the_rewards_and_a_reward_fit_the_screen_and_the_table_scrolls_in_its_card(
    page_as, marketer
):
    from campaigns.models import Campaign

    campaign = Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    for n in range(5):
        mirror_add(
            campaign, start + dt.timedelta(hours=n), recipient_email=f"a-long-name-{n}@example.com"
        )
    ours = mirror_add(campaign, start + dt.timedelta(days=2), recipient_email="sally@chan.com")
    ours.send = send_add(campaign, remote_id=ours.remote_id, sent_at=ours.date, by=marketer,
                         name="Sally Chan")  # fmt: skip
    ours.save()
    page = page_as("manager")
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto("/rewards/")
    expect(page.locator("#rewards tbody tr")).to_have_count(6)
    assert page.evaluate(DOCUMENT_WIDTH) <= 390
    page.click("#filter-box summary")
    assert page.evaluate(DOCUMENT_WIDTH) <= 390
    screenshot(page, "filters-open")
    # Jump to a date: the table starts at that day.
    page.fill("#id_day", "2026-05-01")
    with page.expect_navigation():
        page.click("#jump button[type=submit]")
    expect(page.locator("#rewards tbody tr")).to_have_count(5)
    # From after To: refused, naming the fields.
    page.goto("/rewards/?date_from=2026-05-20&date_to=2026-05-01")
    expect(page.locator("#refused")).to_contain_text("From date (2026-05-20) is after To date")
    assert page.evaluate(DOCUMENT_WIDTH) <= 390

    page.goto(f"/rewards/reward/{ours.pk}/")
    expect(page.locator("#ledger-facts")).to_contain_text("Sally Chan")
    assert page.evaluate(DOCUMENT_WIDTH) <= 390
