"""A manager reads the monthly report in the browser: the chart, another year, both files."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.utils import timezone
from openpyxl import load_workbook
from playwright.sync_api import expect

from rewards.models import MonthlySummary
from tests.browser.conftest import screenshot
from tests.mirror.helpers import mirror_add, send_add

pytestmark = pytest.mark.browser

CANVAS_HAS_INK = """() => {
  const canvas = document.getElementById("report-chart");
  if (!canvas || canvas.dataset.drawn !== "1") return false;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
  return false;
}"""


def _year_of(campaign, marketer, year: int, rewards: int):
    for month in (2, 7):
        MonthlySummary.objects.create(
            campaign=campaign,
            year=year,
            month=month,
            reward_count=rewards,
            tree_count=rewards * 2,
            synced_at=timezone.now(),
        )
    date = dt.datetime(year, 2, 14, 9, tzinfo=dt.UTC)
    reward = mirror_add(campaign, date, tree_count=2)
    reward.send = send_add(
        campaign, remote_id=reward.remote_id, sent_at=date, by=marketer, name="=HYPERLINK(1)"
    )
    reward.save()


def test_a_manager_opens_the_report_sees_the_chart_changes_the_year_and_downloads_both_files(
    page_as, marketer, tmp_path
):
    from campaigns.models import Campaign

    campaign = Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")
    this_year = timezone.now().year
    _year_of(campaign, marketer, this_year, rewards=40)
    _year_of(campaign, marketer, this_year - 1, rewards=7)
    page = page_as("manager")

    page.goto("/rewards/reports/")
    expect(page.locator("h1")).to_have_text(f"Monthly report {this_year}")
    page.wait_for_function(CANVAS_HAS_INK)
    expect(page.locator("#months tr[data-month='2'] td").nth(1)).to_have_text("40")
    screenshot(page, "chart-drawn")

    with page.expect_navigation():
        page.select_option("#id_year", str(this_year - 1))
    expect(page.locator("h1")).to_have_text(f"Monthly report {this_year - 1}")
    expect(page.locator("#months tr[data-month='7'] td").nth(1)).to_have_text("7")
    page.wait_for_function(CANVAS_HAS_INK)

    with page.expect_download() as download:
        page.click("#download-report-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:2] == ["month", "mokugift_rewards"]
    assert rows[2][:4] == ["February", "7", "14", "1"]
    assert download.value.suggested_filename == f"report-{this_year - 1}.csv"

    with page.expect_download() as download:
        page.click("#download-report-xlsx")
    target = tmp_path / "report.xlsx"
    download.value.save_as(target)
    workbook = load_workbook(target)
    months = list(workbook[f"{this_year - 1} by month"].values)
    assert months[7][:2] == ("July", 7)
    by_sender = list(workbook[f"{this_year - 1} by sender"].values)
    assert by_sender[1] == ("mark-marketer", 1, 2)


DOCUMENT_WIDTH = "() => document.documentElement.scrollWidth"
CHART_SHAPE = """() => {
  const chart = window.reportChart;
  return {
    axes: chart.data.datasets.map((d) => [d.label, d.yAxisID]),
    scales: Object.keys(chart.options.scales).sort(),
    font: Chart.defaults.font.family,
    mokugift: chart.data.datasets[0].data,
  };
}"""


def test_the_chart_has_one_axis_per_unit_and_nothing_where_there_is_no_data_on_a_phone(
    page_as, marketer
):
    from campaigns.models import Campaign

    campaign = Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")
    last_year = timezone.now().year - 1
    _year_of(campaign, marketer, last_year, rewards=12)
    page = page_as("manager")
    page.set_viewport_size({"width": 390, "height": 844})

    page.goto(f"/rewards/reports/?year={last_year}")
    page.wait_for_function(CANVAS_HAS_INK)
    shape = page.evaluate(CHART_SHAPE)
    assert dict(shape["axes"]) == {
        "Rewards (Mokugift)": "rewards",
        "Rewards (sent from here)": "rewards",
        "Trees (Mokugift)": "trees",
        "Trees (sent from here)": "trees",
    }
    assert shape["scales"] == ["rewards", "trees", "x"]
    assert "system-ui" in shape["font"]  # the kit's font
    # Synced in February and July only: every other month is nothing, not a zero.
    assert shape["mokugift"][1] == 12 and shape["mokugift"][6] == 12
    assert [shape["mokugift"][m] for m in (0, 2, 3, 4, 5, 7, 8, 9, 10, 11)] == [None] * 10
    assert page.evaluate(DOCUMENT_WIDTH) <= 390
    screenshot(page, "phone")


def test_without_javascript_the_table_stands_in_for_the_chart(
    browser, live_server, manager, marketer, request
):
    from campaigns.models import Campaign
    from tests.browser.conftest import Screenshots, _watch, login_as

    campaign = Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")
    _year_of(campaign, marketer, timezone.now().year, rewards=40)
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    try:
        page = context.new_page()
        _watch(page, Screenshots(request.node.nodeid))
        login_as(page, manager)
        page.goto("/rewards/reports/")
        expect(page.locator("#chart-card")).to_be_hidden()
        expect(page.locator("#months tr[data-month='2'] td").nth(1)).to_have_text("40")
        assert page.evaluate(DOCUMENT_WIDTH) <= 390
    finally:
        context.close()
