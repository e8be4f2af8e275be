"""The home page: each role's overview, its figures against rows made here, what needs
attention, the recent batches, and the aggregate (LedgerMonth) the figures are read from."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from rewards.models import Batch, LedgerMonth, MirroredReward, MonthlySummary, Send, SyncRun
from rewards.selectors.overview import FAILED_BATCH_DAYS, overview_for
from rewards.services.ledger_months import ledger_months_refresh
from rewards.services.sending import batch_finish_if_done

pytestmark = pytest.mark.django_db


def _month_back(now: dt.datetime, back: int) -> tuple[int, int]:
    index = now.year * 12 + now.month - 1 - back
    year, month = divmod(index, 12)
    return year, month + 1


def _in_month(now: dt.datetime, back: int) -> dt.datetime:
    """A moment inside the month `back` months before now's (this month: a minute ago)."""
    if back == 0:
        return now - dt.timedelta(minutes=1)
    year, month = _month_back(now, back)
    return dt.datetime(year, month, 2, 12, tzinfo=dt.UTC)


_serial = iter(range(1, 10**6))


def _batch(campaign, by, *, state=Batch.State.DONE, created_at=None, **fields) -> Batch:
    batch = Batch.objects.create(
        campaign=campaign, mode="email", source="csv", state=state, created_by=by, **fields
    )
    if created_at is not None:
        Batch.objects.filter(pk=batch.pk).update(created_at=created_at)
        batch.refresh_from_db()
    return batch


def _rows(batch, state, n, *, sent_at=None, trees=0, **fields) -> list[Send]:
    made = []
    for _ in range(n):
        serial = next(_serial)
        remote_id = f"r-{serial}" if state == Send.State.SENT else ""
        send = Send.objects.create(
            batch=batch,
            row_number=serial + 1,
            recipient=f"person{serial}@example.com",
            state=state,
            remote_id=remote_id,
            sent_at=sent_at if state == Send.State.SENT else None,
            **fields,
        )
        if trees:
            MirroredReward.objects.create(
                campaign=batch.campaign,
                remote_id=remote_id,
                date=sent_at,
                recipient_email=send.recipient,
                tree_count=trees,
                first_seen_at=sent_at,
                last_seen_at=sent_at,
                send=send,
            )
        made.append(send)
    return made


@pytest.fixture
def now():
    return timezone.now().astimezone(dt.UTC)


@pytest.fixture
def spring(db):
    return Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")


@pytest.fixture
def autumn(db):
    return Campaign.objects.create(name="Autumn", campaign_id="autumn", environment="sandbox")


@pytest.fixture
def other_marketer(django_user_model):
    from tests.conftest import _user

    return _user(django_user_model, "olga-marketer", "Marketing")


@pytest.fixture
def ledger(now, spring, autumn, marketer, other_marketer):
    """This month: the marketer sent 3 (2 trees each) and 1 failed on Spring; another marketer
    sent 2 (1 tree each) on Autumn. Last month: 4 sent by the marketer, 1 failed. Not counted
    anywhere: a row sent 13 months ago, rows waiting and of unknown outcome (not sent)."""
    this, last = _in_month(now, 0), _in_month(now, 1)
    mine = _batch(spring, marketer, created_at=this)
    _rows(mine, Send.State.SENT, 3, sent_at=this, trees=2)
    _rows(mine, Send.State.FAILED, 1, error_message="No moku-coins left (Mokugift error 105)")
    theirs = _batch(autumn, other_marketer, created_at=this)
    _rows(theirs, Send.State.SENT, 2, sent_at=this, trees=1)
    before = _batch(spring, marketer, created_at=last)
    _rows(before, Send.State.SENT, 4, sent_at=last)
    _rows(before, Send.State.FAILED, 1)
    old = _batch(spring, marketer, created_at=_in_month(now, 13))
    _rows(old, Send.State.SENT, 5, sent_at=_in_month(now, 13))
    _rows(old, Send.State.FAILED, 5)
    open_batch = _batch(spring, marketer, state=Batch.State.SENDING, created_at=this)
    _rows(open_batch, Send.State.WAITING, 2)
    for year, month, campaign, rewards, trees in [
        (*_month_back(now, 0), spring, 100, 250),
        (*_month_back(now, 0), autumn, 50, 100),
        (*_month_back(now, 1), spring, 70, 140),
        (*_month_back(now, 12), spring, 999, 999),  # outside the twelve months
    ]:
        MonthlySummary.objects.create(
            campaign=campaign,
            year=year,
            month=month,
            reward_count=rewards,
            tree_count=trees,
            synced_at=now,
        )
    return {"mine": mine, "theirs": theirs, "before": before, "old": old, "open": open_batch}


def _figure(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert found, f"#{element_id} is not on the page"
    return found.group(1)


def test_the_admin_sees_mokugift_s_figures_and_ours_of_this_month_and_last(
    client, admin_user, ledger, now
):
    client.force_login(admin_user)
    page = client.get(reverse("home")).content.decode()
    assert _figure(page, "fig-mokugift-rewards") == "150"
    assert _figure(page, "fig-mokugift-trees") == "350"
    assert _figure(page, "fig-sent") == "5"
    assert _figure(page, "fig-failed") == "1"
    assert "Last month 70" in page and "Last month 4" in page
    overview = overview_for(user=admin_user, now=now)
    this, last = overview.this_month, overview.last_month
    assert (this.mokugift_rewards, this.mokugift_trees) == (150, 350)
    assert (this.sent, this.trees, this.failed) == (5, 8, 1)
    assert (last.mokugift_rewards, last.sent, last.trees, last.failed) == (70, 4, 0, 1)
    # The row sent 13 months ago and the summary of 12 months ago are outside the window.
    assert len(overview.months) == 12
    assert sum(m.sent for m in overview.months) == 9
    assert sum(m.mokugift_rewards or 0 for m in overview.months) == 220


def test_the_marketer_sees_what_was_sent_and_by_them_but_not_mokugift_s_figures(
    client, marketer, ledger, now
):
    client.force_login(marketer)
    page = client.get(reverse("home")).content.decode()
    assert 'id="fig-mokugift-rewards"' not in page
    assert _figure(page, "fig-sent") == "5"
    # The other marketer's 2 are not the marketer's own.
    assert _figure(page, "fig-sent-by-you") == "3"
    assert _figure(page, "fig-trees") == "8"
    assert _figure(page, "fig-failed") == "1"
    overview = overview_for(user=marketer, now=now)
    assert overview.this_month.mokugift_rewards is None
    assert (overview.this_month.sent_by_you, overview.last_month.sent_by_you) == (3, 4)


def test_the_manager_sees_the_figures_but_no_batch_lists(client, manager, ledger, now):
    client.force_login(manager)
    page = client.get(reverse("home")).content.decode()
    assert _figure(page, "fig-mokugift-rewards") == "150"
    assert _figure(page, "fig-sent") == "5"
    assert _figure(page, "fig-trees") == "8"
    assert 'id="fig-failed"' not in page and 'id="recent-batches"' not in page
    # No link the manager could not open: the menu's Approvals is theirs.
    links = set(re.findall(r'href="(/rewards/batches/[^"]*)"', page))
    assert links == {reverse("rewards:approval_list")}
    assert all(client.get(link).status_code == 200 for link in links)


def test_a_person_without_a_role_sees_no_figure(client, outsider, ledger):
    client.force_login(outsider)
    page = client.get(reverse("home")).content.decode()
    assert 'id="no-role"' in page
    assert 'id="fig-sent"' not in page and "150" not in page


def test_the_overview_of_some_campaigns_counts_only_their_rows(marketer, ledger, spring, now):
    """The narrowing a grant of campaigns per person will use: Autumn's rows, summaries and
    batches are not counted in an overview of Spring alone."""
    overview = overview_for(user=marketer, now=now, campaign_ids=(spring.pk,))
    assert (overview.this_month.sent, overview.this_month.trees) == (3, 6)
    assert {b.campaign for b in overview.recent} == {"Spring"}
    everything = overview_for(user=marketer, now=now)
    assert everything.this_month.sent == 5
    assert {b.campaign for b in everything.recent} == {"Spring", "Autumn"}


def test_the_figures_are_the_same_from_the_aggregate_and_count_rows_sent_since_once(
    admin_user, ledger, spring, marketer, now
):
    before = overview_for(user=admin_user, now=now)
    assert LedgerMonth.objects.count() == 0
    ledger_months_refresh()
    assert LedgerMonth.objects.exists()
    after = overview_for(user=admin_user, now=now)
    assert [(m.sent, m.trees, m.failed) for m in after.months] == [
        (m.sent, m.trees, m.failed) for m in before.months
    ]
    # Sent after the refresh: counted from the ledger, once.
    later = timezone.now() + dt.timedelta(seconds=1)
    _rows(ledger["mine"], Send.State.SENT, 2, sent_at=later)
    again = overview_for(user=marketer, now=later)
    assert again.this_month.sent == 7
    assert again.this_month.sent_by_you == 5
    ledger_months_refresh(now=later + dt.timedelta(seconds=1))
    assert overview_for(user=marketer, now=later).this_month.sent == 7


def test_the_aggregate_is_refreshed_when_a_batch_ends(
    spring, marketer, now, django_capture_on_commit_callbacks
):
    batch = _batch(spring, marketer, state=Batch.State.SENDING)
    _rows(batch, Send.State.SENT, 2, sent_at=now - dt.timedelta(seconds=5))
    _rows(batch, Send.State.FAILED, 3)
    with django_capture_on_commit_callbacks(execute=True):
        assert batch_finish_if_done(batch_id=batch.pk)
    year, month = _month_back(now, 0)
    cell = LedgerMonth.objects.get(campaign=spring, sender=marketer, year=year, month=month)
    assert (cell.sent, cell.failed) == (2, 3)


def test_needs_attention_lists_paused_unknown_and_failed_batches_with_links(
    client, marketer, spring, now
):
    paused = _batch(spring, marketer, state=Batch.State.PAUSED, paused_reason="No moku-coins left")
    waiting = _batch(spring, marketer, state=Batch.State.SENDING)
    _rows(waiting, Send.State.UNKNOWN, 2, attempt_started_at=now - dt.timedelta(hours=3))
    failed = _batch(spring, marketer)
    _rows(failed, Send.State.FAILED, 95)
    long_ago = _batch(spring, marketer, created_at=now - dt.timedelta(days=FAILED_BATCH_DAYS + 1))
    _rows(long_ago, Send.State.FAILED, 1)
    fine = _batch(spring, marketer)
    _rows(fine, Send.State.SENT, 1, sent_at=now)
    client.force_login(marketer)
    page = client.get(reverse("home")).content.decode()
    detail = reverse("rewards:batch_detail", args=[paused.pk])
    assert f'href="{detail}"' in page and "No moku-coins left" in page
    assert f'href="{reverse("rewards:batch_detail", args=[waiting.pk])}?state=unknown"' in page
    assert "2 rows of unknown outcome" in page and "3\xa0hours" in page
    assert f'href="{reverse("rewards:batch_detail", args=[failed.pk])}?state=failed"' in page
    assert "95 rows failed" in page
    overview = overview_for(user=marketer, now=now)
    assert [b.pk for b in overview.paused] == [paused.pk]
    assert [b.pk for b in overview.unknown] == [waiting.pk]
    assert [b.pk for b in overview.with_failures] == [failed.pk]  # not the one of long ago
    # The recent batches say the failures too, in the warning colour.
    recent = {b.pk: b for b in overview.recent}
    assert recent[failed.pk].summary == "Done, 95 failed"
    assert recent[failed.pk].badge == "bg-warning-lt"
    assert recent[fine.pk].summary == "Done" and recent[fine.pk].badge == "bg-success-lt"


def test_needs_attention_lists_campaigns_whose_check_or_last_sync_failed(
    client, admin_user, manager, spring, autumn
):
    Campaign.objects.filter(pk=spring.pk).update(
        last_check_ok=False, last_check_message="Wrong passcode (Mokugift error 102)"
    )
    SyncRun.objects.create(
        campaign=autumn, outcome=SyncRun.Outcome.FAILED, error="Mokugift did not answer in 30 s"
    )
    client.force_login(admin_user)
    page = client.get(reverse("home")).content.decode()
    assert f'href="{reverse("campaigns:detail", args=[spring.pk])}"' in page
    assert "Wrong passcode (Mokugift error 102)" in page
    assert f'href="{reverse("rewards:list")}?campaign={autumn.pk}"' in page
    assert "Mokugift did not answer in 30 s" in page
    # The manager cannot fix credentials: only the sync is theirs.
    client.force_login(manager)
    page = client.get(reverse("home")).content.decode()
    assert "Wrong passcode" not in page and "Mokugift did not answer in 30 s" in page
    # A later sync that succeeded clears it.
    SyncRun.objects.create(campaign=autumn, outcome=SyncRun.Outcome.SUCCEEDED)
    page = client.get(reverse("home")).content.decode()
    assert "Mokugift did not answer" not in page and 'id="attention-empty"' in page


def test_needs_attention_says_so_when_nothing_needs_anyone(client, admin_user, ledger):
    # The ledger's failures are of batches started this month and last: they count.
    Send.objects.filter(state=Send.State.FAILED).update(state=Send.State.CANCELLED)
    Batch.objects.filter(state=Batch.State.SENDING).update(state=Batch.State.DONE)
    client.force_login(admin_user)
    page = client.get(reverse("home")).content.decode()
    assert 'id="attention-empty"' in page and "Nothing needs you" in page


def test_the_marketer_s_own_batches_come_first(marketer, other_marketer, spring, now):
    mine = _batch(spring, marketer, created_at=now - dt.timedelta(days=2))
    theirs = [_batch(spring, other_marketer) for _ in range(3)]
    overview = overview_for(user=marketer, now=now)
    assert [b.pk for b in overview.recent] == [mine.pk] + [b.pk for b in reversed(theirs)]
    assert overview.recent[0].mine and not overview.recent[1].mine


def test_the_chart_has_its_numbers_in_the_page_and_the_table_stands_without_it(
    client, admin_user, ledger
):
    client.force_login(admin_user)
    response = client.get(reverse("home"))
    page = response.content.decode()
    assert '<script id="home-chart-data" type="application/json">' in page
    assert 'id="home-chart-box" hidden' in page  # shown by static/js/home.js once drawn
    chart = response.context["chart"]
    assert len(chart["labels"]) == 12 and chart["sent"][-1] == 5 and chart["failed"][-1] == 1
    assert chart["mokugift_rewards"][-1] == 150
    rows = re.findall(r'<tr data-month="(\d{4}-\d{2})">', page)
    assert len(rows) == 12 and rows[0] > rows[-1]  # newest first


@pytest.mark.parametrize("role", ["admin_user", "marketer", "manager"])
def test_the_home_page_runs_a_bounded_number_of_queries_however_many_batches(
    client, request, role, ledger, spring, marketer, now, django_assert_max_num_queries
):
    user = request.getfixturevalue(role)
    for n in range(30):
        batch = _batch(spring, marketer, state=Batch.State.PAUSED if n % 3 else Batch.State.DONE)
        _rows(batch, Send.State.FAILED, 1)
        _rows(batch, Send.State.UNKNOWN, 1, attempt_started_at=now)
    ledger_months_refresh()
    client.force_login(user)
    # Session, user, two of permissions, the bell's unread notices, the menu's count of
    # approvals waiting; then at most six of the overview and one of the monthly budgets.
    with django_assert_max_num_queries(13):
        assert client.get(reverse("home")).status_code == 200


def test_a_sync_brings_the_trees_of_our_rewards_to_the_home_page(sandbox, marketer):
    """The trees of a reward sent from here are known once a sync links it to the mirror, and
    the sync refreshes the aggregate the home page reads."""
    from rewards.services.sync import rewards_sync_month
    from tests.mirror.helpers import sandbox_rewards_add, send_add

    campaign = sandbox.campaign("c-1", "pass-1")
    now = timezone.now().astimezone(dt.UTC)
    (reward,) = sandbox_rewards_add("c-1", now - dt.timedelta(minutes=5), trees=3)
    send_add(campaign, remote_id=reward.remote_id, sent_at=reward.created, by=marketer)
    ledger_months_refresh()
    assert overview_for(user=marketer).this_month.trees == 0  # not mirrored yet

    run = rewards_sync_month(campaign=campaign, year=now.year, month=now.month)

    assert run.outcome == SyncRun.Outcome.SUCCEEDED
    cell = LedgerMonth.objects.get(campaign=campaign, year=now.year, month=now.month)
    assert (cell.sent, cell.trees) == (1, 3)
    this = overview_for(user=marketer).this_month
    assert (this.sent, this.trees, this.sent_by_you) == (1, 3, 1)
