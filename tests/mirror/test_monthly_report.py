"""The monthly report: its numbers, its reconciliation, and its files."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from rewards.models import MonthlySummary
from rewards.selectors.mirror import report_for_year
from tests.mirror.helpers import mirror_add, send_add


def _at(month: int, day: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, 12, tzinfo=dt.UTC)


def _summary(campaign, month: int, rewards: int, trees: int, year: int = 2026):
    return MonthlySummary.objects.create(
        campaign=campaign,
        year=year,
        month=month,
        reward_count=rewards,
        tree_count=trees,
        synced_at=timezone.now(),
    )


@pytest.fixture
def year_of_rewards(campaign, other_campaign, marketer, admin_user):
    # March: Mokugift lists 3 (2 trees each), 2 of them ours (sent by the marketer).
    _summary(campaign, 3, 3, 6)
    for n in range(3):
        reward = mirror_add(campaign, _at(3, n + 1), tree_count=2)
        if n < 2:
            reward.send = send_add(
                campaign, remote_id=reward.remote_id, sent_at=_at(3, n + 1), by=marketer
            )
            reward.save()
    # April: Mokugift lists 1 of the other campaign; we sent 2 from the admin, one of which
    # Mokugift does not list.
    _summary(other_campaign, 4, 1, 5)
    reward = mirror_add(other_campaign, _at(4), tree_count=5)
    reward.send = send_add(
        other_campaign, remote_id=reward.remote_id, sent_at=_at(4), by=admin_user
    )
    reward.save()
    send_add(
        other_campaign, remote_id="never-listed", sent_at=_at(4, 20), by=admin_user, name="Lost"
    )
    # Another year and a failed row: not counted.
    _summary(campaign, 3, 99, 99, year=2025)
    send_add(campaign, remote_id="", sent_at=None, state="failed", by=marketer)


def test_the_report_counts_mokugift_and_ours_per_month_and_reconciles(year_of_rewards):
    report = report_for_year(year=2026)
    march, april, may = report.months[2], report.months[3], report.months[4]

    assert (march.mokugift_rewards, march.mokugift_trees) == (3, 6)
    assert (march.ours_rewards, march.ours_trees) == (2, 4)
    assert (march.difference, march.elsewhere, march.ledger_not_in_mokugift) == (1, 1, 0)
    assert march.disagrees

    assert (april.mokugift_rewards, april.ours_rewards, april.ours_trees) == (1, 2, 5)
    assert (april.difference, april.elsewhere, april.ledger_not_in_mokugift) == (-1, 0, 1)
    assert [s.remote_id for s in report.ledger_not_in_mokugift] == ["never-listed"]

    assert may.mokugift_rewards is None and not may.disagrees
    totals = report.totals
    assert (totals.mokugift_rewards, totals.ours_rewards, totals.mokugift_trees) == (4, 4, 11)


def test_the_report_breaks_down_by_campaign_and_by_sender(year_of_rewards, campaign):
    report = report_for_year(year=2026)
    by_campaign = {c["campaign"]: c for c in report.by_campaign}
    assert (
        by_campaign["Spring"]["mokugift_rewards"] == 3
        and by_campaign["Spring"]["ours_rewards"] == 2
    )
    assert (
        by_campaign["Autumn"]["mokugift_trees"] == 5 and by_campaign["Autumn"]["ours_rewards"] == 2
    )
    assert {(s["sender"], s["rewards"]) for s in report.by_sender} == {
        ("mark-marketer", 2),
        ("alice-admin", 2),
    }

    one = report_for_year(year=2026, campaign_ids=(campaign.pk,))
    assert one.totals.mokugift_rewards == 3 and one.totals.ours_rewards == 2
    assert one.ledger_not_in_mokugift == []


def test_the_report_page_shows_the_year_chart_data_and_the_flags(client, manager, year_of_rewards):
    client.force_login(manager)
    body = client.get(reverse("rewards:report"), {"year": 2026}).content.decode()
    assert 'id="report-chart"' in body and 'id="report-data"' in body
    assert "chart-4.6.1.umd.min.js" in body
    assert body.count('data-disagrees="1"') == 2  # March and April
    assert "never-listed" in body
    old = client.get(reverse("rewards:report"), {"year": 2025}).content.decode()
    assert ">99<" in old


def test_the_ledger_rows_not_in_mokugift_show_when_they_were_sent_in_utc(
    client, manager, year_of_rewards, settings
):
    # The column says UTC; 12:00 UTC on 20 April is 21:00 in Tokyo.
    settings.TIME_ZONE = "Asia/Tokyo"
    client.force_login(manager)

    body = client.get(reverse("rewards:report"), {"year": 2026}).content.decode()

    assert '<td class="text-nowrap">2026-04-20 12:00:00</td>' in body


def test_the_report_page_runs_a_bounded_number_of_queries(
    client, manager, year_of_rewards, django_assert_max_num_queries
):
    client.force_login(manager)
    client.get(reverse("rewards:report"))
    # One of them reads the campaigns the manager may see, one the bell's unread notices, one
    # the menu's count of approvals waiting.
    with django_assert_max_num_queries(19):
        client.get(reverse("rewards:report"), {"year": 2026})


def test_the_report_csv_holds_the_months_as_the_page_shows_them(client, manager, year_of_rewards):
    client.force_login(manager)
    response = client.get(reverse("rewards:report_csv"), {"year": 2026})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][0] == "month" and len(rows) == 1 + 12 + 1
    assert rows[3] == ["March", "3", "6", "2", "4", "1", "1", "0", "0", "yes"]
    assert rows[4][:6] == ["April", "1", "5", "2", "5", "-1"]
    assert rows[-1][0] == "Total"
    ledger = client.get(reverse("rewards:report_csv"), {"year": 2026, "table": "ledger"})
    ledger_rows = list(csv.reader(io.StringIO(b"".join(ledger.streaming_content).decode())))
    assert [row[-1] for row in ledger_rows[1:]] == ["never-listed"]


def test_the_breakdowns_download_as_csv_from_links_on_the_page(client, manager, year_of_rewards):
    client.force_login(manager)
    page = client.get(reverse("rewards:report"), {"year": 2026}).content.decode()
    for table in ("campaigns", "senders"):
        assert f"year=2026&amp;table={table}" in page
        response = client.get(reverse("rewards:report_csv"), {"year": 2026, "table": table})
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        if table == "campaigns":
            spring = next(row for row in rows if row[0] == "Spring")
            assert spring[1:5] == ["3", "6", "2", "4"], rows
        else:
            assert sorted(row[:2] for row in rows[1:]) == [
                ["alice-admin", "2"],
                ["mark-marketer", "2"],
            ]


def test_the_report_xlsx_has_every_table_and_neutralises_formulas(
    client, manager, year_of_rewards, other_campaign, admin_user
):
    send_add(
        other_campaign,
        remote_id="evil",
        sent_at=_at(5),
        by=admin_user,
        name='=HYPERLINK("http://evil.test","click")',
        recipient="@evil.example",
    )
    client.force_login(manager)
    response = client.get(reverse("rewards:report_xlsx"), {"year": 2026})
    assert response["Content-Disposition"].startswith('attachment; filename="report-2026')
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert workbook.sheetnames == [
        "2026 by month",
        "2026 by campaign",
        "2026 by sender",
        "2026 not in Mokugift",
    ]
    months = list(workbook["2026 by month"].values)
    assert months[3][:6] == ("March", 3, 6, 2, 4, 1)
    assert months[4][5] == -1  # a negative number stays a number
    ledger = {row[-1]: row for row in workbook["2026 not in Mokugift"].values}
    assert ledger["evil"][5] == '\'=HYPERLINK("http://evil.test","click")'
    assert ledger["evil"][4] == "'@evil.example"


def test_the_report_xlsx_is_for_people_titles_frozen_header_widths_and_number_formats(
    client, manager, year_of_rewards
):
    client.force_login(manager)
    response = client.get(reverse("rewards:report_xlsx"), {"year": 2026})
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    months = workbook["2026 by month"]
    titles = [cell.value for cell in months[1]]
    assert titles[:4] == ["Month", "Mokugift rewards", "Mokugift trees", "Sent from here"]
    assert all(" " in title or title[0].isupper() for title in titles)
    assert "_" not in "".join(titles)
    assert months["A1"].font.bold
    assert months.freeze_panes == "A2"
    assert months.column_dimensions["A"].width >= 10
    assert months.column_dimensions["H"].width >= len("In our ledger, not in Mokugift") - 6
    march = months[4]
    assert march[1].value == 3 and march[1].number_format == "#,##0"
    ledger = workbook["2026 not in Mokugift"]
    assert ledger["A1"].value == "Sent (UTC)" and ledger.freeze_panes == "A2"
    sent = ledger["A2"]
    assert sent.value == dt.datetime(2026, 4, 20, 12)  # a date, in UTC, not text
    assert sent.number_format == "yyyy-mm-dd hh:mm:ss"


def test_the_rewards_xlsx_has_titles_a_frozen_header_dates_and_counts(campaign, tmp_path):
    from rewards.selectors.mirror import RewardFilters, rewards_filter
    from rewards.services.export import rewards_xlsx

    mirror_add(campaign, _at(5), tree_count=1234)
    target = tmp_path / "rewards.xlsx"
    with open(target, "wb") as out:
        rewards_xlsx(rewards=rewards_filter(filters=RewardFilters()), out=out)
    sheet = load_workbook(target)["Rewards"]
    assert [cell.value for cell in sheet[1]][:4] == [
        "Campaign",
        "Reward ID",
        "Date (UTC)",
        "Recipient email",
    ]
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["D"].width >= 25
    assert sheet["C2"].value == dt.datetime(2026, 5, 10, 12)
    assert sheet["C2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet["G2"].value == 1234 and sheet["G2"].number_format == "#,##0"


def test_the_year_menu_offers_every_year_with_data_and_the_current_one(
    client, manager, year_of_rewards, campaign
):
    mirror_add(campaign, dt.datetime(2019, 6, 1, tzinfo=dt.UTC))  # only the mirror knows 2019
    client.force_login(manager)
    response = client.get(reverse("rewards:report"))
    years = [choice[0] for choice in response.context["form"].fields["year"].choices]
    this_year = timezone.now().year
    assert years == sorted({this_year, 2026, 2025, 2019}, reverse=True)
    assert client.get(reverse("rewards:report"), {"year": 2019}).status_code == 200


@pytest.mark.parametrize("year", ["1999", "next-year"])
def test_an_unknown_year_is_said_not_swapped_for_another_year(
    client, manager, year_of_rewards, year
):
    client.force_login(manager)
    response = client.get(reverse("rewards:report"), {"year": year})
    body = response.content.decode()
    assert response.status_code == 404
    assert f"There is no data for {year}." in body
    assert 'id="months"' not in body and "Monthly report 2026" not in body
    for name in ("rewards:report_csv", "rewards:report_xlsx"):
        assert client.get(reverse(name), {"year": year}).status_code == 404


def test_an_unknown_campaign_is_said_not_swapped_for_all_campaigns(
    client, manager, year_of_rewards
):
    client.force_login(manager)
    response = client.get(reverse("rewards:report"), {"year": 2026, "campaign": 987654})
    assert response.status_code == 404
    assert "There is no campaign 987654." in response.content.decode()


def test_the_chart_has_nothing_where_there_is_no_data(year_of_rewards):
    report = report_for_year(year=2026)
    chart = report.chart_data(today=dt.date(2026, 6, 15))
    # January: never synced and nothing sent from here: nothing to draw (None, not 0).
    assert chart["mokugift_rewards"][0] is None and chart["mokugift_trees"][0] is None
    assert chart["ours_rewards"][0] is None and chart["ours_trees"][0] is None
    assert chart["mokugift_rewards"][2] == 3 and chart["ours_trees"][2] == 4
    # July to December have not come yet: nothing at all, not zeros.
    for series in ("mokugift_rewards", "mokugift_trees", "ours_rewards", "ours_trees"):
        assert chart[series][6:] == [None] * 6
    assert chart["ours_rewards"][3] == 2  # April: two sent from here


def test_the_report_works_with_nothing_synced(client, manager):
    client.force_login(manager)
    response = client.get(reverse("rewards:report"))
    assert response.status_code == 200
    assert "Nothing in" in response.content.decode()


def test_only_exporters_download(client, marketer, outsider):
    for user in (marketer, outsider):
        client.force_login(user)
        assert client.get(reverse("rewards:report")).status_code == 403
        assert client.get(reverse("rewards:report_xlsx")).status_code == 403
