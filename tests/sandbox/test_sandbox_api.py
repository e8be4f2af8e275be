"""The sandbox's eight calls over real HTTP, checked element by element against the document."""

from __future__ import annotations

import datetime as dt
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection
from django.test import Client
from django.utils import timezone

from sandbox.models import SandboxCampaign, SandboxReward
from sandbox.selectors import sandbox_rewards_rows
from tests.sandbox.helpers import (
    DATE,
    DOCUMENTED_ERRORS,
    TIMEOUT,
    assert_failed,
    get,
    parse,
    post,
    tags,
)

PASS = "pass-1"


@pytest.fixture
def campaign(sandbox):
    return sandbox.campaign("c-1", PASS, trees_per_reward=3)


def _shown(page: requests.Response, pattern: str) -> str:
    """The text of the one element of the page that `pattern` matches (its group)."""
    (text,) = re.findall(pattern, page.text, flags=re.DOTALL)
    return text.strip()


def _rewards(**filters):
    return SandboxReward.objects.filter(campaign__campaign_id="c-1", **filters)


# --- The single create calls ---------------------------------------------------------------


def test_reward_creates_one_emailed_reward_and_answers_without_a_url(sandbox, campaign):
    response = post(
        sandbox,
        "reward/c-1",
        passcode=PASS,
        recipient_email="sally@chan.com",
        recipient_name="Sally Chan",
    )

    root = parse(response)
    assert tags(root) == ["version", "status", "transaction_id", "reward"]
    assert root.findtext("status") == "Success"
    assert root.findtext("transaction_id")
    reward = root.find("reward")
    assert tags(reward) == ["id", "recipient_email"]
    assert reward.findtext("recipient_email") == "sally@chan.com"
    made = _rewards().get()
    assert made.remote_id == reward.findtext("id")
    assert (made.name, made.tree_count, made.emailed) == ("Sally Chan", 3, True)
    assert made.transaction_id == root.findtext("transaction_id")
    assert SandboxCampaign.objects.get(campaign_id="c-1").coins == 1_000_000 - 1


def test_reward_url_answers_the_url_of_a_public_page_showing_the_reward(sandbox, campaign):
    root = parse(
        post(
            sandbox,
            "reward_url/c-1",
            passcode=PASS,
            recipient_email="john@smith.com",
            recipient_name="Jöhn Smith",
        )
    )

    reward = root.find("reward")
    assert tags(reward) == ["id", "recipient_email", "url"]
    made = _rewards().get()
    assert made.emailed is False
    assert reward.findtext("url") == made.url
    page = requests.get(made.url, timeout=TIMEOUT)  # no session: the page is public
    assert page.status_code == 200
    created = timezone.localtime(made.created)
    # The date a person reads, not the `datetime` attribute beside it (always there).
    assert _shown(page, r"<time\b[^>]*>(.*?)</time>") == f"{created.day} {created:%B %Y}"
    assert _shown(page, r'<p data-field="recipient">(.*?)</p>') == "For Jöhn Smith"
    assert _shown(page, r'<strong data-field="tree_count">(.*?)</strong>') == "3"
    assert page.text.count("🌳") == 0  # no emoji: a machine may lack the font
    assert page.text.count('<use href="#tree"/>') == 3


def test_reward_url2_makes_a_reward_for_the_callers_own_recipient_id(sandbox, campaign):
    root = parse(post(sandbox, "reward_url2/c-1", passcode=PASS, recipient_id="user6789"))

    reward = root.find("reward")
    assert tags(reward) == ["id", "recipient_id", "url"]
    assert reward.findtext("recipient_id") == "user6789"
    made = _rewards().get()
    assert (made.recipient_id, made.recipient_email, made.name) == ("user6789", "", "")


def test_the_paths_work_with_and_without_a_trailing_slash(sandbox, campaign):
    parse(post(sandbox, "reward/c-1/", passcode=PASS, recipient_email="a@b.com"))
    parse(get(sandbox, "all_rewards/c-1/"))
    parse(get(sandbox, "rewards_in_month/c-1/"))
    assert _rewards().count() == 1


def test_a_reward_page_that_does_not_exist_is_a_404(sandbox, live_server):
    page = requests.get(live_server.url + "/sandbox/rewards/nope/", timeout=TIMEOUT)
    assert page.status_code == 404


# --- The multi create calls ----------------------------------------------------------------


def test_multi_rewards_makes_one_emailed_reward_per_recipient(sandbox, campaign):
    recipient_list = " sally@chan.com ,John Smith <john@smith.com>,  Ann Lee<ann@lee.org>  "

    root = parse(post(sandbox, "multi_rewards/c-1", passcode=PASS, recipient_list=recipient_list))

    assert tags(root) == ["version", "status", "transaction_id", "rewards"]
    assert root.findtext("status") == "Success"
    rewards = root.find("rewards")
    assert tags(rewards) == ["reward"] * 3
    assert all(tags(r) == ["id", "recipient_email"] for r in rewards)
    assert [r.findtext("recipient_email") for r in rewards] == [
        "sally@chan.com",
        "john@smith.com",
        "ann@lee.org",
    ]
    made = list(_rewards().order_by("pk").values_list("recipient_email", "name", "emailed"))
    assert made == [
        ("sally@chan.com", "", True),
        ("john@smith.com", "John Smith", True),
        ("ann@lee.org", "Ann Lee", True),
    ]


def test_multi_reward_urls_answers_each_url(sandbox, campaign):
    root = parse(
        post(sandbox, "multi_reward_urls/c-1", passcode=PASS, recipient_list="a@b.com,c@d.com")
    )

    rewards = root.find("rewards")
    assert all(tags(r) == ["id", "recipient_email", "url"] for r in rewards)
    by_id = dict(_rewards().values_list("remote_id", "url"))
    assert {r.findtext("id"): r.findtext("url") for r in rewards} == by_id
    assert not _rewards(emailed=True).exists()


def test_multi_reward_urls2_makes_rewards_by_recipient_id(sandbox, campaign):
    root = parse(
        post(
            sandbox,
            "multi_reward_urls2/c-1",
            passcode=PASS,
            recipient_list="user6789, John Smith <user1234>",
        )
    )

    rewards = root.find("rewards")
    assert all(tags(r) == ["id", "recipient_id", "url"] for r in rewards)
    assert [r.findtext("recipient_id") for r in rewards] == ["user6789", "user1234"]
    assert _rewards(recipient_id="user1234", name="John Smith").count() == 1


def test_a_multi_call_with_some_bad_items_is_part_failed_and_names_each_unsent_one(
    sandbox, campaign
):
    recipient_list = "good@one.com, not-an-email, Bad <name <x@y.com>>, , Fine <fine@two.com>"

    root = parse(
        post(sandbox, "multi_reward_urls/c-1", passcode=PASS, recipient_list=recipient_list)
    )

    assert tags(root) == ["version", "status", "transaction_id", "rewards", "unsent_rewards"]
    assert root.findtext("status") == "Part_Failed"
    assert [r.findtext("recipient_email") for r in root.find("rewards")] == [
        "good@one.com",
        "fine@two.com",
    ]
    unsent = root.find("unsent_rewards")
    assert tags(unsent) == ["unsent_reward"] * 3
    assert all(tags(u) == ["recipient", "error"] for u in unsent)
    assert all(tags(u.find("error")) == ["code", "description"] for u in unsent)
    found = [(u.findtext("recipient"), int(u.findtext("error/code"))) for u in unsent]
    assert found == [("not-an-email", 112), ("Bad <name <x@y.com>>", 113), ("", 111)]
    for u in unsent:
        assert u.findtext("error/description") == DOCUMENTED_ERRORS[int(u.findtext("error/code"))]
    assert _rewards().count() == 2


def test_a_multi_call_where_every_item_is_bad_fails_with_the_first_items_error(sandbox, campaign):
    root = parse(post(sandbox, "multi_rewards/c-1", passcode=PASS, recipient_list="nope, x@"))

    assert tags(root) == ["version", "status", "transaction_id", "unsent_rewards", "error"]
    assert root.findtext("status") == "Failed"
    assert root.findtext("error/code") == "112"
    assert root.findtext("error/description") == "Invalid email"
    assert not _rewards().exists()


def test_coins_run_short_mid_list_the_rest_is_unsent_with_105(sandbox):
    sandbox.campaign("c-1", PASS, coins=2)

    root = parse(
        post(sandbox, "multi_rewards/c-1", passcode=PASS, recipient_list="a@a.com,b@b.com,c@c.com")
    )

    assert root.findtext("status") == "Part_Failed"
    assert [r.findtext("recipient_email") for r in root.find("rewards")] == ["a@a.com", "b@b.com"]
    assert root.findtext("unsent_rewards/unsent_reward/recipient") == "c@c.com"
    assert root.findtext("unsent_rewards/unsent_reward/error/code") == "105"
    assert SandboxCampaign.objects.get(campaign_id="c-1").coins == 0


def test_a_call_of_1000_recipients_is_made_quickly_and_1001_is_refused_with_114(sandbox, campaign):
    thousand = ",".join(f"Person {i} <p{i}@example.com>" for i in range(1000))

    started = time.perf_counter()
    root = parse(post(sandbox, "multi_reward_urls/c-1", passcode=PASS, recipient_list=thousand))
    elapsed = time.perf_counter() - started

    assert root.findtext("status") == "Success"
    assert len(root.find("rewards")) == 1000
    assert _rewards().count() == 1000
    # Generous for a shared CI machine; it takes about a tenth of this on PostgreSQL.
    assert elapsed < 3, f"1,000 rewards took {elapsed:.2f} s"

    response = post(
        sandbox, "multi_reward_urls/c-1", passcode=PASS, recipient_list=thousand + ",one@more.com"
    )
    assert_failed(response, 114)
    assert _rewards().count() == 1000


# --- Every error from a real request --------------------------------------------------------


def test_a_wrong_method_is_error_100_on_every_call(sandbox, campaign):
    for call in ["reward", "reward_url", "reward_url2", "multi_rewards", "multi_reward_urls"]:
        assert_failed(get(sandbox, f"{call}/c-1"), 100)
    assert_failed(requests.put(sandbox.api_url + "multi_reward_urls2/c-1", timeout=TIMEOUT), 100)
    assert_failed(post(sandbox, "all_rewards/c-1"), 100)
    assert_failed(post(sandbox, "rewards_in_month/c-1/1/2026"), 100)
    # The method is checked first, before the campaign.
    assert_failed(get(sandbox, "reward/no-such-campaign"), 100)


def test_an_unknown_campaign_is_error_101(sandbox, campaign):
    assert_failed(post(sandbox, "reward/c-2", passcode=PASS, recipient_email="a@b.com"), 101)
    assert_failed(get(sandbox, "all_rewards/c-2"), 101)
    assert_failed(get(sandbox, "rewards_in_month/c-2/1/2026"), 101)


def test_a_wrong_or_missing_passcode_is_error_102(sandbox, campaign):
    assert_failed(post(sandbox, "reward/c-1", passcode="pass-2", recipient_email="a@b.com"), 102)
    assert_failed(post(sandbox, "reward/c-1", recipient_email="a@b.com"), 102)
    assert_failed(post(sandbox, "multi_rewards/c-1", passcode="", recipient_list="a@b.com"), 102)
    assert not _rewards().exists()


def test_a_disabled_campaign_is_error_103_but_still_answers_queries(sandbox):
    sandbox.campaign("c-1", PASS, enabled=False)

    assert_failed(post(sandbox, "reward_url/c-1", passcode=PASS, recipient_email="a@b.com"), 103)
    assert parse(get(sandbox, "all_rewards/c-1")).findtext("status") == "Success"


def test_an_expired_campaign_is_error_104(sandbox):
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    sandbox.campaign("c-1", PASS, expires=yesterday)

    assert_failed(post(sandbox, "reward/c-1", passcode=PASS, recipient_email="a@b.com"), 104)


def test_a_campaign_expiring_today_still_makes_rewards(sandbox):
    sandbox.campaign("c-1", PASS, expires=dt.datetime.now(dt.UTC).date())

    root = parse(post(sandbox, "reward/c-1", passcode=PASS, recipient_email="a@b.com"))
    assert root.findtext("status") == "Success"


def test_no_coins_left_is_error_105(sandbox):
    sandbox.campaign("c-1", PASS, coins=0)

    assert_failed(
        post(sandbox, "reward/c-1", passcode=PASS, recipient_email="a@b.com"), 105, transaction=True
    )
    root = parse(post(sandbox, "multi_rewards/c-1", passcode=PASS, recipient_list="a@b.com"))
    assert root.findtext("status") == "Failed"
    assert root.findtext("error/code") == "105"
    assert not _rewards().exists()


def test_a_missing_recipient_is_error_111(sandbox, campaign):
    assert_failed(post(sandbox, "reward/c-1", passcode=PASS), 111)
    assert_failed(post(sandbox, "reward_url/c-1", passcode=PASS, recipient_email="  "), 111)
    # reward_url2 wants recipient_id, not recipient_email.
    assert_failed(post(sandbox, "reward_url2/c-1", passcode=PASS, recipient_email="a@b.com"), 111)
    assert_failed(post(sandbox, "multi_rewards/c-1", passcode=PASS), 111)
    assert_failed(post(sandbox, "multi_reward_urls2/c-1", passcode=PASS, recipient_list=" "), 111)


def test_an_invalid_email_is_error_112(sandbox, campaign):
    for bad in ["sally", "sally@", "John <john@smith.com>", "a b@c.com"]:
        assert_failed(post(sandbox, "reward/c-1", passcode=PASS, recipient_email=bad), 112)
    assert not _rewards().exists()


def test_invalid_parameters_are_error_113(sandbox, campaign):
    assert_failed(
        post(
            sandbox,
            "reward/c-1",
            passcode=PASS,
            recipient_email="a@b.com",
            recipient_name="x" * 201,
        ),
        113,
    )
    assert_failed(
        post(sandbox, "reward_url2/c-1", passcode=PASS, recipient_id="bell\x07"),
        113,
    )
    assert_failed(get(sandbox, "rewards_in_month/c-1/13/2026"), 113)
    assert_failed(get(sandbox, "rewards_in_month/c-1/0/2026"), 113)
    assert_failed(get(sandbox, "rewards_in_month/c-1/5/26"), 113)
    assert_failed(get(sandbox, "rewards_in_month/c-1/may/2026"), 113)
    # Digits int() refuses: a superscript two, and more digits than it reads (4,300; in
    # process, as the test server's static files handler cannot take so long a path).
    assert_failed(get(sandbox, "rewards_in_month/c-1/\u00b2/2026"), 113)
    assert_failed(Client().get(f"/sandbox/api/rewards_in_month/c-1/{'1' * 5000}/2026"), 113)
    # Only one of month and year.
    assert_failed(get(sandbox, "rewards_in_month/c-1/5"), 113)
    assert_failed(get(sandbox, "all_rewards/c-1/5/2026"), 113)


def test_over_1000_rewards_is_error_114(sandbox, campaign):
    ids = ",".join(f"user{i}" for i in range(1001))
    assert_failed(post(sandbox, "multi_reward_urls2/c-1", passcode=PASS, recipient_list=ids), 114)


# --- The query calls -----------------------------------------------------------------------


def _make(sandbox, *emails, path="multi_rewards/c-1"):
    return parse(post(sandbox, path, passcode=PASS, recipient_list=",".join(emails)))


def test_all_rewards_lists_every_reward_with_date_trees_and_a_summary(sandbox, campaign):
    _make(sandbox, "a@a.com", "b@b.com")
    _make(sandbox, "u1", path="multi_reward_urls2/c-1")

    response = get(sandbox, "all_rewards/c-1")

    root = parse(response)
    assert "Content-Length" not in response.headers  # streamed
    assert tags(root) == ["version", "status", "rewards", "summary"]
    assert root.findtext("status") == "Success"
    rewards = root.find("rewards")
    assert [tags(r) for r in rewards] == [
        ["id", "recipient_email", "date", "tree_count"],
        ["id", "recipient_email", "date", "tree_count"],
        ["id", "recipient_id", "date", "tree_count"],
    ]
    made = list(_rewards().order_by("pk"))
    assert [r.findtext("id") for r in rewards] == [m.remote_id for m in made]
    assert [r.findtext("date") for r in rewards] == [
        m.created.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") for m in made
    ]
    assert all(DATE.fullmatch(r.findtext("date")) for r in rewards)
    assert [r.findtext("tree_count") for r in rewards] == ["3", "3", "3"]
    summary = root.find("summary")
    assert tags(summary) == ["reward_count", "tree_count"]
    assert (summary.findtext("reward_count"), summary.findtext("tree_count")) == ("3", "9")


def test_all_rewards_of_a_campaign_without_rewards_is_an_empty_list(sandbox, campaign):
    root = parse(get(sandbox, "all_rewards/c-1"))

    assert len(root.find("rewards")) == 0
    assert root.findtext("summary/reward_count") == "0"
    assert root.findtext("summary/tree_count") == "0"


def test_rewards_in_month_holds_only_that_month_in_utc(sandbox, campaign):
    _make(sandbox, "jan@a.com", "feb-start@a.com", "feb-end@a.com", "mar@a.com")
    moments = {
        "jan@a.com": dt.datetime(2025, 1, 31, 23, 59, 59, tzinfo=dt.UTC),
        "feb-start@a.com": dt.datetime(2025, 2, 1, 0, 0, 0, tzinfo=dt.UTC),
        "feb-end@a.com": dt.datetime(2025, 2, 28, 23, 59, 59, tzinfo=dt.UTC),
        "mar@a.com": dt.datetime(2025, 3, 1, 0, 0, 0, tzinfo=dt.UTC),
    }
    for email, moment in moments.items():
        _rewards(recipient_email=email).update(created=moment)

    root = parse(get(sandbox, "rewards_in_month/c-1/2/2025"))

    rewards = root.find("rewards")
    assert [r.findtext("recipient_email") for r in rewards] == ["feb-start@a.com", "feb-end@a.com"]
    assert [r.findtext("date") for r in rewards] == ["2025-02-01 00:00:00", "2025-02-28 23:59:59"]
    assert root.findtext("summary/reward_count") == "2"
    assert root.findtext("summary/tree_count") == "6"
    assert (
        parse(get(sandbox, "rewards_in_month/c-1/02/2025")).findtext("summary/reward_count") == "2"
    )


def test_query_dates_are_utc_to_the_second_whatever_the_pages_zone(sandbox, campaign, settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    _make(sandbox, "late@a.com")
    _rewards(recipient_email="late@a.com").update(
        created=dt.datetime(2025, 2, 28, 23, 59, 59, 987654, tzinfo=dt.UTC)
    )

    rewards = parse(get(sandbox, "rewards_in_month/c-1/2/2025")).find("rewards")

    assert [r.findtext("date") for r in rewards] == ["2025-02-28 23:59:59"]


def test_query_dates_do_not_depend_on_the_database_sessions_time_zone(sandbox, campaign):
    _make(sandbox, "late@a.com")
    _rewards(recipient_email="late@a.com").update(
        created=dt.datetime(2025, 2, 28, 23, 59, 59, 987654, tzinfo=dt.UTC)
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'Asia/Tokyo'")

    rows = list(sandbox_rewards_rows(campaign=SandboxCampaign.objects.get(campaign_id="c-1")))

    assert [row[3] for row in rows] == ["2025-02-28 23:59:59"]


def test_rewards_in_month_without_a_month_means_the_current_month(sandbox, campaign):
    _make(sandbox, "now@a.com", "old@a.com")
    _rewards(recipient_email="old@a.com").update(
        created=dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    )

    root = parse(get(sandbox, "rewards_in_month/c-1"))

    assert [r.findtext("recipient_email") for r in root.find("rewards")] == ["now@a.com"]


def test_text_is_escaped_and_utf8(sandbox, campaign):
    parse(
        post(
            sandbox,
            "reward_url2/c-1",
            passcode=PASS,
            recipient_id="ID&<日本>",
            recipient_name="Zoë & Ørjan",
        )
    )

    root = parse(get(sandbox, "all_rewards/c-1"))

    assert root.findtext("rewards/reward/recipient_id") == "ID&<日本>"
    assert _rewards().get().name == "Zoë & Ørjan"


def test_concurrent_calls_never_spend_more_coins_than_there_are(sandbox):
    sandbox.campaign("c-1", PASS, coins=250)
    lists = [",".join(f"t{t}-{i}@example.com" for i in range(100)) for t in range(4)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        roots = list(
            pool.map(
                lambda recipient_list: parse(
                    post(sandbox, "multi_rewards/c-1", passcode=PASS, recipient_list=recipient_list)
                ),
                lists,
            )
        )

    made = sum(len(root.findall("rewards/reward")) for root in roots)
    unsent = sum(len(root.findall("unsent_rewards/unsent_reward")) for root in roots)
    assert (made, unsent) == (250, 150)
    assert _rewards().count() == 250
    assert SandboxCampaign.objects.get(campaign_id="c-1").coins == 0
