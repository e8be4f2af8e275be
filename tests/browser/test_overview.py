"""The home page in a browser: each role's overview at phone and desktop width, its chart drawn
from the page's numbers, its links to what needs attention, and the table without JavaScript."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.models import Campaign
from rewards.models import Batch, MonthlySummary, Send, SyncRun
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def things_to_show(marketer, admin_user):
    """A paused batch, one with rows of unknown outcome, one with failures, a done one; a
    campaign whose check failed, one whose last sync failed; a year of Mokugift's summaries."""
    now = timezone.now()
    spring = Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")
    autumn = Campaign.objects.create(
        name="Autumn",
        campaign_id="autumn",
        environment="sandbox",
        last_check_ok=False,
        last_check_message="Wrong passcode (Mokugift error 102)",
        last_check_at=now,
    )
    SyncRun.objects.create(campaign=spring, outcome=SyncRun.Outcome.FAILED, error="Timed out")

    def batch(state, by, **fields):
        return Batch.objects.create(
            campaign=spring, mode="email", source="csv", state=state, created_by=by, **fields
        )

    batches = {
        "paused": batch(Batch.State.PAUSED, marketer, paused_reason="No moku-coins left"),
        "unknown": batch(Batch.State.SENDING, marketer, filename="a-rather-long-file-name.csv"),
        "failed": batch(Batch.State.DONE, admin_user),
        "done": batch(Batch.State.DONE, marketer),
    }
    row = iter(range(2, 10_000))

    def rows(b, state, n, **fields):
        for _ in range(n):
            number = next(row)
            Send.objects.create(
                batch=b,
                row_number=number,
                recipient=f"someone.with.a.long.address{number}@example.com",
                state=state,
                remote_id=f"r-{number}" if state == Send.State.SENT else "",
                sent_at=now if state == Send.State.SENT else None,
                **fields,
            )

    rows(batches["unknown"], Send.State.UNKNOWN, 2, attempt_started_at=now - dt.timedelta(hours=2))
    rows(batches["failed"], Send.State.FAILED, 95)
    rows(batches["failed"], Send.State.SENT, 5)
    rows(batches["done"], Send.State.SENT, 12)
    index = now.year * 12 + now.month - 1
    for back in range(12):
        year, month = divmod(index - back, 12)
        MonthlySummary.objects.create(
            campaign=spring,
            year=year,
            month=month + 1,
            reward_count=1000 + 37 * back,
            tree_count=2500 + 90 * back,
            synced_at=now,
        )
    return {"batches": batches, "autumn": autumn, "spring": spring}


def _no_wider_than_the_window(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    window = page.evaluate("window.innerWidth")
    assert width <= window, f"the page is {width}px wide in a {window}px window"


@pytest.mark.parametrize("role", ["admin", "marketer", "manager", "outsider"])
def test_each_role_s_overview_fits_a_phone_and_a_desktop(page_as, role, things_to_show):
    page = page_as(role)
    for size, name in ((PHONE, "phone"), (DESKTOP, "desktop")):
        page.set_viewport_size(size)
        page.goto("/")
        _no_wider_than_the_window(page)
        if role != "outsider":
            # The chart is drawn from the page's own numbers (no inline script: the CSP).
            page.wait_for_selector("#home-chart[data-drawn='1']")
            assert page.locator("#home-chart-box").is_visible()
            assert page.locator("#months tbody tr").count() == 12
        screenshot(page, f"{role}-{name}")


def test_the_marketer_follows_what_needs_attention_to_the_batch(page_as, things_to_show):
    page = page_as("marketer")
    attention = page.locator("#attention")
    assert attention.get_by_text("No moku-coins left").is_visible()
    assert attention.get_by_text("2 rows of unknown outcome").is_visible()
    assert attention.get_by_text("95 rows failed").is_visible()
    # Marketing does not manage campaigns: the failed check is the admin's to fix.
    assert attention.get_by_text("Wrong passcode").count() == 0
    failed = things_to_show["batches"]["failed"]
    with page.expect_navigation():
        attention.locator(".attention-failed").click()
    assert page.url.endswith(f"/rewards/batches/{failed.pk}/?state=failed")


def test_the_admin_follows_a_failed_check_to_the_campaign(page_as, things_to_show):
    page = page_as("admin")
    check = page.locator("#attention .attention-check")
    assert "Wrong passcode (Mokugift error 102)" in check.inner_text()
    with page.expect_navigation():
        check.click()
    assert page.url.endswith(f"/campaigns/{things_to_show['autumn'].pk}/")


def test_without_javascript_the_numbers_stand_as_a_table(browser, live_server, admin_user):
    from tests.browser.conftest import login_as

    context = browser.new_context(
        base_url=live_server.url, viewport=PHONE, java_script_enabled=False
    )
    try:
        page = context.new_page()
        login_as(page, admin_user)  # the password, then the two-factor code: no script needed
        assert page.locator("#months tbody tr").count() == 12
        assert not page.locator("#home-chart-box").is_visible()  # no empty canvas
        assert page.get_by_text("Nothing needs you").is_visible()
        _no_wider_than_the_window(page)
    finally:
        context.close()
