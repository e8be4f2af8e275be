"""The rewards page: filters, search, keyset pages, queries per page, the reward page, the CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.urls import reverse

from rewards.models import SendEvent
from tests.mirror.helpers import mirror_add, send_add

BASE = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _day(n: int, hour: int = 12) -> dt.datetime:
    return BASE + dt.timedelta(days=n, hours=hour)


@pytest.fixture
def client_as(client):
    def login(user):
        client.force_login(user)
        return client

    return login


@pytest.fixture
def shaped(campaign, other_campaign, marketer, admin_user):
    """A small mirror where every filter picks a different set."""
    rows = {}
    rows["may-ours"] = mirror_add(campaign, _day(2), recipient_email="sally@chan.com")
    send = send_add(campaign, remote_id="x", sent_at=_day(2), by=marketer, name="Sally Chan")
    rows["may-ours"].send = send
    rows["may-ours"].save()
    rows["may-theirs"] = mirror_add(campaign, _day(5), recipient_email="bob@example.org")
    rows["june-id"] = mirror_add(campaign, _day(35), recipient_email="", recipient_id="user6789")
    rows["other"] = mirror_add(other_campaign, _day(3), recipient_email="ann@example.com")
    send2 = send_add(other_campaign, remote_id="y", sent_at=_day(3), by=admin_user, name="Ann Lee")
    rows["other"].send = send2
    rows["other"].save()
    rows["gone"] = mirror_add(campaign, _day(6), missing_since=_day(7))
    return rows


def _shown(response) -> list[str]:
    return re.findall(r'data-remote-id="([^"]+)"', response.content.decode())


def _ids(shaped, *names):
    return [shaped[name].remote_id for name in names]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, ["june-id", "gone", "may-theirs", "other", "may-ours"]),
        ({"order": "oldest"}, ["may-ours", "other", "may-theirs", "gone", "june-id"]),
        ({"month": "2026-06"}, ["june-id"]),
        ({"date_from": "2026-05-04", "date_to": "2026-05-06"}, ["may-theirs", "other"]),
        ({"month": "2026-05", "date_from": "2026-05-05"}, ["gone", "may-theirs"]),
        ({"source": "dashboard"}, ["other", "may-ours"]),
        ({"source": "elsewhere"}, ["june-id", "gone", "may-theirs"]),
        ({"sender": "marketer"}, ["may-ours"]),
        ({"batch": "may-ours"}, ["may-ours"]),
        ({"q": "CHAN.c"}, ["may-ours"]),
        ({"q": "6789"}, ["june-id"]),
        ({"q": "ann lee"}, ["other"]),
        ({"missing": "on"}, ["gone"]),
    ],
)
def test_each_filter_and_the_search_return_the_right_rows(
    client_as, manager, shaped, campaign, marketer, params, expected
):
    params = dict(params)
    if params.get("sender") == "marketer":
        params["sender"] = marketer.pk
    if params.get("batch") == "may-ours":
        params["batch"] = shaped["may-ours"].send.batch_id
    response = client_as(manager).get(reverse("rewards:list"), params)
    assert response.status_code == 200
    assert _shown(response) == _ids(shaped, *expected)


def test_the_campaign_filter_shows_one_campaign(client_as, manager, shaped, other_campaign):
    response = client_as(manager).get(reverse("rewards:list"), {"campaign": other_campaign.pk})
    assert _shown(response) == _ids(shaped, "other")


def test_a_filter_that_does_not_pass_says_why(client_as, manager, shaped):
    response = client_as(manager).get(reverse("rewards:list"), {"month": "May"})
    assert "A month looks like 2026-05." in response.content.decode()


def test_an_empty_mirror_says_how_to_fill_it(client_as, manager):
    body = client_as(manager).get(reverse("rewards:list")).content.decode()
    assert "Nothing mirrored yet" in body and "sync_rewards" in body


def _walk(client, params, link_id="older"):
    """Every row, page by page through the `link_id` links, and the pages' row lists."""
    url = reverse("rewards:list") + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    pages = []
    while url:
        response = client.get(url)
        pages.append(_shown(response))
        found = re.search(rf'id="{link_id}" href="([^"]+)"', response.content.decode())
        url = reverse("rewards:list") + found.group(1).replace("&amp;", "&") if found else None
        yield pages[-1]


def test_keyset_pages_neither_skip_nor_repeat_when_new_rewards_arrive(
    client_as, manager, campaign, settings
):
    from rewards.selectors import mirror

    size = mirror.PAGE_SIZE
    # Several rewards share a date: the id breaks the tie.
    made = [mirror_add(campaign, _day(n // 3)) for n in range(size * 2 + 7)]
    client = client_as(manager)
    seen = []
    for number, page in enumerate(_walk(client, {})):
        seen.extend(page)
        if number == 0:
            # Newer rewards arrive while someone reads page 1, and one at an old tied date.
            for n in range(5):
                mirror_add(campaign, _day(100 + n))
            mirror_add(campaign, _day(0))
    expected = [r.remote_id for r in sorted(made, key=lambda r: (r.date, r.pk), reverse=True)]
    late_old = [r for r in seen if r not in expected]
    assert [r for r in seen if r in expected] == expected
    assert len(seen) == len(set(seen))
    # The one that arrived at an old date is after the cursor, so it shows up too.
    assert len(late_old) == 1


def test_oldest_first_pages_go_on_by_newer_and_come_back_by_older(client_as, manager, campaign):
    from rewards.selectors import mirror

    made = [mirror_add(campaign, _day(n % 40)) for n in range(mirror.PAGE_SIZE * 2 + 3)]
    client = client_as(manager)
    forward = list(_walk(client, {"order": "oldest"}, link_id="newer"))
    assert [len(page) for page in forward] == [mirror.PAGE_SIZE, mirror.PAGE_SIZE, 3]
    expected = [r.remote_id for r in sorted(made, key=lambda r: (r.date, r.pk))]
    assert sum(forward, []) == expected

    first = client.get(reverse("rewards:list"), {"order": "oldest"}).content.decode()
    second_url = re.search(r'id="newer" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(reverse("rewards:list") + second_url).content.decode()
    back_url = re.search(r'id="older" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert _shown(client.get(reverse("rewards:list") + back_url)) == forward[0]


def test_a_cursor_that_is_not_ours_shows_the_first_page(client_as, manager, campaign):
    mirror_add(campaign, _day(1))
    response = client_as(manager).get(reverse("rewards:list"), {"cursor": "bm90LWEtY3Vyc29y!!"})
    assert response.status_code == 200 and len(_shown(response)) == 1


def test_the_list_page_runs_a_bounded_number_of_queries(
    client_as, manager, campaign, marketer, django_assert_max_num_queries
):
    for n in range(60):
        reward = mirror_add(campaign, _day(n % 28))
        if n % 2:
            reward.send = send_add(
                campaign, remote_id=reward.remote_id, sent_at=_day(1), by=marketer
            )
            reward.save()
    client = client_as(manager)
    client.get(reverse("rewards:list"))  # the session and permissions, cached after this
    # (One of them is the bell's unread notices, one the menu's count of approvals waiting.)
    with django_assert_max_num_queries(12):
        first = client.get(reverse("rewards:list"), {"q": "example", "source": "dashboard"})
    assert len(_shown(first)) == 30
    older = re.search(
        r'id="older" href="([^"]+)"', client.get(reverse("rewards:list")).content.decode()
    )
    with django_assert_max_num_queries(12):
        client.get(reverse("rewards:list") + older.group(1).replace("&amp;", "&"))


def test_the_reward_page_shows_the_ledger_row_its_batch_and_history(client_as, manager, shaped):
    reward = shaped["may-ours"]
    SendEvent.objects.create(send=reward.send, from_state="sending", to_state="sent", note="made")
    body = (
        client_as(manager).get(reverse("rewards:reward_detail", args=[reward.pk])).content.decode()
    )
    assert "Sally Chan" in body and f"#{reward.send.batch_id}" in body
    assert "mark-marketer" in body and "made" in body
    other = client_as(manager).get(reverse("rewards:reward_detail", args=[shaped["june-id"].pk]))
    assert "Not sent from this dashboard" in other.content.decode()
    assert (
        client_as(manager).get(reverse("rewards:reward_detail", args=[999999])).status_code == 404
    )


def test_the_reward_page_shows_its_date_in_utc_as_it_says(client_as, manager, campaign, settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    reward = mirror_add(campaign, dt.datetime(2026, 5, 31, 20, 15, 7, tzinfo=dt.UTC))

    body = client_as(manager).get(reverse("rewards:reward_detail", args=[reward.pk])).content
    assert '<dt>Date (UTC)</dt><dd class="text-nowrap">2026-05-31 20:15:07</dd>' in body.decode()


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.parametrize(
    "params",
    [{}, {"source": "elsewhere"}, {"month": "2026-05", "order": "oldest"}, {"q": "example"}],
)
def test_the_csv_of_a_filter_holds_the_rows_the_filter_shows(client_as, manager, shaped, params):
    client = client_as(manager)
    shown = _shown(client.get(reverse("rewards:list"), params))
    response = client.get(reverse("rewards:list_csv"), params)
    assert response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert rows[0][:3] == ["campaign", "reward_id", "date_utc"]
    assert [row[1] for row in rows[1:]] == shown


def test_the_csv_holds_the_whole_filter_not_one_page(client_as, manager, campaign):
    from rewards.selectors import mirror

    for n in range(mirror.PAGE_SIZE + 20):
        mirror_add(campaign, _day(n % 20))
    rows = _csv(client_as(manager).get(reverse("rewards:list_csv")))
    assert len(rows) == mirror.PAGE_SIZE + 21


def test_a_name_like_a_formula_comes_out_neutralised_in_the_csv(
    client_as, manager, campaign, marketer
):
    reward = mirror_add(campaign, _day(1), recipient_email="-evil@example.com")
    reward.send = send_add(
        campaign,
        remote_id=reward.remote_id,
        sent_at=_day(1),
        by=marketer,
        name='=HYPERLINK("http://evil.test","click")',
    )
    reward.save()
    rows = _csv(client_as(manager).get(reverse("rewards:list_csv")))
    assert rows[1][5] == '\'=HYPERLINK("http://evil.test","click")'
    assert rows[1][3] == "'-evil@example.com"
    assert rows[1][6] == "1"  # a number stays a number


def test_a_row_shows_its_date_in_utc_and_links_to_its_reward(
    client_as, manager, campaign, settings
):
    # The column says UTC, whatever zone the pages show other times in.
    settings.TIME_ZONE = "Asia/Tokyo"
    reward = mirror_add(campaign, dt.datetime(2026, 5, 31, 20, 15, 7, tzinfo=dt.UTC))
    page = client_as(manager).get(reverse("rewards:list")).content.decode()
    detail = reverse("rewards:reward_detail", args=[reward.pk])
    assert f'<a href="{detail}">2026-05-31 20:15:07</a>' in page


def _row_cells(page: str, remote_id: str) -> list[str]:
    row = re.search(rf'<tr data-remote-id="{re.escape(remote_id)}">(.*?)</tr>', page, re.S)
    assert row, f"no row for {remote_id}"
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)


def test_each_row_shows_its_campaign_recipient_name_trees_source_and_sender(
    client_as, manager, marketer, shaped, campaign
):
    page = client_as(manager).get(reverse("rewards:list")).content.decode()

    ours = _row_cells(page, shaped["may-ours"].remote_id)
    batch_id = shaped["may-ours"].send.batch_id
    assert ours[1:5] == [campaign.name, "sally@chan.com", "Sally Chan", "1"]
    assert ours[5] == (
        f'<span class="badge bg-success-subtle text-success-emphasis">dashboard</span> '
        f"batch #{batch_id}"
    )
    assert ours[6] == marketer.username
    assert ours[7] == ""
    theirs = _row_cells(page, shaped["june-id"].remote_id)
    assert theirs[2:4] == ["user6789", ""]
    assert "elsewhere" in theirs[5]
    assert theirs[6] == ""
    gone = _row_cells(page, shaped["gone"].remote_id)
    assert "no longer listed" in gone[7]
    assert "2026-05-08 12:00:00 UTC" in gone[7]


def test_a_row_escapes_what_mokugift_and_the_ledger_hold(client_as, manager, campaign):
    reward = mirror_add(campaign, _day(1), recipient_email="<b>a@b.com</b>")
    reward.send = send_add(campaign, remote_id="z", sent_at=_day(1), name="<script>x()</script>")
    reward.save()

    page = client_as(manager).get(reverse("rewards:list")).content.decode()

    assert "<script>x()" not in page
    cells = _row_cells(page, reward.remote_id)
    assert cells[2:4] == ["&lt;b&gt;a@b.com&lt;/b&gt;", "&lt;script&gt;x()&lt;/script&gt;"]


def test_the_marketer_and_the_outsider_may_not_browse(client_as, marketer, outsider):
    for user in (marketer, outsider):
        client = client_as(user)
        assert client.get(reverse("rewards:list")).status_code == 403
        assert client.get(reverse("rewards:list_csv")).status_code == 403
        client.logout()


def test_refresh_queues_a_sync_after_commit_and_comes_straight_back(
    client_as, manager, campaign, other_campaign, django_capture_on_commit_callbacks
):
    client = client_as(manager)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("rewards:sync_refresh"),
            {"campaign": campaign.pk, "month": "2026-05", "next": "campaign=1"},
        )
    assert response.status_code == 302 and response["Location"].endswith("?campaign=1")
    assert len(callbacks) == 1
    assert callbacks[0].keywords["args"] == [campaign.pk, 2026, 5]
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("rewards:sync_refresh"), {"next": "q=bob"}, headers={"HX-Request": "true"}
        )
    # With htmx: the sync status in place, waiting for the queued runs to start.
    fragment = response.content.decode()
    assert response.status_code == 200 and fragment.lstrip().startswith('<div class="card')
    assert "Refresh queued…" in fragment and 'hx-trigger="every 1.5s"' in fragment
    assert "since=" in fragment and "next=q%3Dbob" in fragment
    assert len(callbacks) == 2


def test_refresh_with_the_broker_down_answers_and_says_nothing_broke(
    client_as, manager, campaign, broker_down, caplog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_as(manager).post(
            reverse("rewards:sync_refresh"), {"campaign": campaign.pk}
        )
    assert response.status_code == 302
    assert "could not enqueue rewards.sync_campaign_month" in caplog.text


def test_the_status_endpoint_reports_the_latest_run(client_as, manager, campaign):
    from rewards.models import SyncRun

    SyncRun.objects.create(campaign=campaign, year=2026, month=5, outcome="succeeded", created=3)
    SyncRun.objects.create(campaign=campaign, year=2026, month=5, rewards_read=7)
    SyncRun.objects.create(campaign=campaign, year=2026, month=5, outcome="skipped")
    fragment = client_as(manager).get(reverse("rewards:sync_status")).content.decode()
    assert "<html" not in fragment
    assert 'data-outcome="running"' in fragment and "7 read" in fragment
    assert 'data-outcome="succeeded"' not in fragment and 'data-outcome="skipped"' not in fragment
    assert 'hx-trigger="every 1.5s"' in fragment  # it polls while the run goes on


def _status(client, **params) -> str:
    return client.get(reverse("rewards:sync_status"), params).content.decode()


def test_the_sync_status_polls_only_while_something_is_on_its_way(client_as, manager, campaign):
    import time

    from rewards.models import SyncRun

    client = client_as(manager)
    run = SyncRun.objects.create(campaign=campaign, year=2026, month=5, outcome="succeeded")
    SyncRun.objects.filter(pk=run.pk).update(started_at=run.started_at - dt.timedelta(hours=1))
    assert "hx-trigger" not in _status(client)
    # Queued by Refresh and not started yet: it waits, for two minutes at most.
    waiting = _status(client, since=f"{time.time():.3f}")
    assert "hx-trigger" in waiting and "Refresh queued…" in waiting
    assert "hx-trigger" not in _status(client, since=f"{time.time() - 121:.3f}")
    # The page said without JavaScript that it does not follow by itself, with a reload link.
    assert "does not update by itself" in _status(client, next="q=bob")
    assert 'href="?q=bob">reload</a>' in _status(client, next="q=bob")
    # A run this page followed ended and changed the mirror: its rewards are offered.
    assert 'id="sync-reload"' not in _status(client, follow=str(run.pk))
    SyncRun.objects.filter(pk=run.pk).update(created=3)
    offered = _status(client, follow=str(run.pk), next="q=bob")
    assert '<a id="sync-reload" href="?q=bob">show them</a>' in offered
    assert "hx-trigger" not in offered
    # Not for a run it did not follow.
    assert 'id="sync-reload"' not in _status(client)


def test_the_rewards_page_and_the_status_view_render_the_same_sync_status(
    client_as, manager, campaign
):
    import re

    from rewards.models import SyncRun

    SyncRun.objects.create(campaign=campaign, year=2026, month=5, rewards_read=7)
    client = client_as(manager)
    page = client.get(reverse("rewards:list")).content.decode()
    fragment = _status(client)

    def part(html: str) -> str:
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)
        start = html.index('<div class="card card-sm mb-3" id="sync-status"')
        return html[start:].split("</form>")[0]

    assert part(fragment) == part(page)


# --- The total, the jump to a date, the folded filters, a range that holds nothing ----------


def _total(response) -> str:
    found = re.search(
        r'<h2 class="card-title me-auto" id="total">(.*?)</h2>', response.content.decode(), re.S
    )
    assert found, "no total on the page"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_the_page_says_how_many_rewards_the_filter_holds(client_as, manager, shaped):
    client = client_as(manager)
    assert _total(client.get(reverse("rewards:list"))) == "5 rewards"
    assert _total(client.get(reverse("rewards:list"), {"month": "2026-05"})) == (
        "4 rewards for these filters"
    )
    assert _total(client.get(reverse("rewards:list"), {"q": "6789"})) == (
        "1 reward for these filters"
    )


def test_past_ten_thousand_the_total_says_more_than_and_counts_no_further(
    client_as, manager, campaign, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rewards.models import MirroredReward

    MirroredReward.objects.bulk_create(
        MirroredReward(
            campaign=campaign,
            remote_id=f"bulk-{n}",
            date=BASE + dt.timedelta(minutes=n),
            recipient_email=f"p{n}@example.com",
            tree_count=1,
            first_seen_at=BASE,
            last_seen_at=BASE,
        )
        for n in range(10_001)
    )
    client = client_as(manager)
    client.get(reverse("rewards:list"))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("rewards:list"))
    assert _total(response) == "More than 10,000 rewards"
    counts = [
        q["sql"]
        for q in queries
        if "COUNT(" in q["sql"].upper() and "rewards_mirroredreward" in q["sql"]
    ]
    assert len(counts) == 1 and "LIMIT 10001" in counts[0]
    MirroredReward.objects.filter(remote_id="bulk-0").delete()
    assert _total(client.get(reverse("rewards:list"))) == "10,000 rewards"


def test_a_jump_to_a_date_starts_the_table_at_that_day_in_either_order(client_as, manager, shaped):
    client = client_as(manager)
    newest = client.get(reverse("rewards:list"), {"day": "2026-05-04"})
    assert _shown(newest) == _ids(shaped, "other", "may-ours")
    assert 'id="newer"' in newest.content.decode()
    oldest = client.get(reverse("rewards:list"), {"day": "2026-05-04", "order": "oldest"})
    assert _shown(oldest) == _ids(shaped, "other", "may-theirs", "gone", "june-id")
    # The jump keeps the filters, and the filters keep no jump in their links.
    filtered = client.get(reverse("rewards:list"), {"day": "2026-05-06", "source": "elsewhere"})
    assert _shown(filtered) == _ids(shaped, "may-theirs")  # "gone" is of 7 May
    body = filtered.content.decode()
    assert '<input type="hidden" name="source" value="elsewhere">' in body
    assert "day=" not in re.search(r'id="download-csv" href="([^"]*)"', body).group(1)


def test_the_filters_fold_into_one_line_that_says_what_is_in_force(client_as, manager, shaped):
    client = client_as(manager)
    plain = client.get(reverse("rewards:list")).content.decode()
    assert '<details class="card mb-3 filter-box" id="filter-box">' in plain
    assert "none: every reward" in plain
    body = client.get(
        reverse("rewards:list"), {"source": "dashboard", "q": "chan", "month": "2026-05"}
    ).content.decode()
    summary = re.sub(
        r"<[^>]+>", "", re.search(r'id="filter-summary">(.*?)</summary>', body, re.S).group(1)
    )
    assert " ".join(summary.split()) == (
        "Month: 2026-05 · Source: Sent from this dashboard · Recipient: chan"
    )
    assert 'id="filter-box">' in body  # still folded: nothing on it needs reading


def test_a_from_date_after_the_to_date_is_refused_naming_both_fields(client_as, manager, shaped):
    client = client_as(manager)
    response = client.get(
        reverse("rewards:list"), {"date_from": "2026-05-20", "date_to": "2026-05-01"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "From date (2026-05-20) is after To date (2026-05-01)" in body
    assert 'id="filter-box" open>' in body  # opened, to fix it
    assert _shown(response) == []
    assert 'id="refused"' in body
    month = client.get(reverse("rewards:list"), {"month": "2026-05", "date_from": "2026-06-02"})
    assert "From date (2026-06-02) is after the end of Month (2026-05)" in month.content.decode()
    assert _shown(month) == []
