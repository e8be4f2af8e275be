"""The mirror over the API: the rewards page's filters and pages, its CSV, the report."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.api.conftest import only
from tests.mirror.helpers import mirror_add

pytestmark = pytest.mark.django_db

MAY = dt.datetime(2026, 5, 10, 12, tzinfo=dt.UTC)


@pytest.fixture
def rewards(spring, autumn):
    for day in range(5):
        mirror_add(spring, MAY + dt.timedelta(days=day), recipient_email=f"s{day}@example.com")
    mirror_add(autumn, MAY, recipient_email="a@example.com")


def test_rewards_come_newest_first_in_cursor_pages(api_as, manager, rewards):
    api = api_as(manager, scopes="read")
    seen, cursor = [], ""
    while True:
        page = api.get("/rewards", {"campaign": "spring-1", "limit": 2, "cursor": cursor}).json()
        seen += [reward["recipient_email"] for reward in page["rewards"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"s{day}@example.com" for day in (4, 3, 2, 1, 0)]
    oldest = api.get("/rewards", {"order": "oldest", "q": "s1@"}).json()["rewards"]
    assert [r["recipient_email"] for r in oldest] == ["s1@example.com"]
    assert oldest[0]["campaign"] == "spring-1"


def test_a_filter_the_page_refuses_is_a_problem_naming_the_field(api_as, manager, rewards):
    api = api_as(manager, scopes="read")
    bad_month = api.get("/rewards", {"month": "May"})
    assert bad_month.status_code == 422
    assert bad_month.json()["errors"][0] == {
        "field": "month",
        "message": "A month looks like 2026-05.",
    }
    swapped = api.get("/rewards", {"date_from": "2026-05-12", "date_to": "2026-05-10"})
    assert swapped.status_code == 422
    assert swapped.json()["errors"][0]["field"] == "query"
    assert api.get("/rewards", {"cursor": "garbage"}).status_code == 422


def test_another_campaigns_rewards_are_not_listed(api_as, manager, spring, rewards):
    only(manager, spring)
    api = api_as(manager, scopes="read")
    emails = {r["recipient_email"] for r in api.get("/rewards").json()["rewards"]}
    assert "a@example.com" not in emails and len(emails) == 5
    assert api.get("/rewards", {"campaign": "autumn-1"}).status_code == 404


def test_the_export_is_the_rewards_pages_file(api_as, manager, client, spring, rewards):
    api = api_as(manager, scopes="reports")
    answer = api.get("/rewards/export.csv", {"campaign": "spring-1", "order": "oldest"})
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    from_api = b"".join(answer.streaming_content)
    client.force_login(manager)
    page = client.get("/rewards/rewards.csv", {"campaign": spring.pk, "order": "oldest"})
    assert from_api == b"".join(page.streaming_content)
    assert from_api.count(b"@example.com") == 5


def test_the_monthly_report_counts_as_the_report_page(api_as, manager, spring, rewards):
    from rewards.selectors.mirror import report_for_year

    report = api_as(manager, scopes="reports").get("/reports/monthly", {"year": 2026}).json()
    expected = report_for_year(year=2026)
    assert [m["month"] for m in report["months"]] == list(range(1, 13))
    assert report["totals"]["ours_rewards"] == expected.totals.ours_rewards
    assert [m["mokugift_rewards"] for m in report["months"]] == [
        m.mokugift_rewards for m in expected.months
    ]
    one = api_as(manager, scopes="reports").get(
        "/reports/monthly", {"year": 2026, "campaign": "spring-1"}
    )
    assert one.json()["campaign"] == "spring-1"


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/rewards", {"campaign": "spring-1\x00"}, "campaign"),
        ("/rewards", {"sender": "mona\x00"}, "sender"),
        ("/rewards/export.csv", {"sender": "mona\x00"}, "sender"),
        ("/reports/monthly", {"year": 2026, "campaign": "\x00"}, "campaign"),
        ("/campaigns/spring-1%00", {}, "campaign"),
    ],
)
def test_a_nul_character_in_a_query_or_a_path_is_a_problem_naming_it(
    api_as, manager, rewards, path, query, field
):
    # Each was a 500: PostgreSQL's text cannot hold U+0000, not even in a query.
    answer = api_as(manager).get(path, query)
    assert answer.status_code == 422
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["errors"] == [
        {
            "field": field,
            "message": "Holds the character U+0000 (NUL), which cannot be stored: remove it.",
        }
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"date_to": "9999-12-31"}, "date_to"),
        ({"date_from": "9999-12-31"}, "date_from"),
        ({"month": "9999-12"}, "month"),
    ],
)
def test_a_date_past_the_calendar_is_a_problem_not_a_500(
    api_as, manager, client, rewards, query, field
):
    # The day after 9999-12-31 (a To date's end) and the end of 9999-12 are no dates.
    answer = api_as(manager).get("/rewards", query)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == field
    assert "before the year 3000" in answer.json()["errors"][0]["message"]
    assert api_as(manager, scopes="reports").get("/rewards/export.csv", query).status_code == 422
    # The rewards page reads the same form.
    client.force_login(manager)
    assert client.get("/rewards/", query).status_code == 200
