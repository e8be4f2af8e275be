"""The pages around the dashboard, in a real browser at phone (390 x 844) and desktop (1280 x
800) width: log in (and the logged-out message), locked out, 404, 403, 500, paid twice and the
sandbox's reward page. None may be wider than the window; each is saved as a screenshot."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings

from tests.browser.conftest import login_as, screenshot
from tests.mirror.helpers import send_add

pytestmark = pytest.mark.browser

WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


def assert_fits(page, what: str) -> None:
    document, window = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert document <= window, f"{what}: the document is {document}px wide, the window {window}px"


@pytest.fixture
def sandbox_rewards(db):
    from sandbox.models import SandboxCampaign, SandboxReward

    campaign = SandboxCampaign.objects.create(campaign_id="c-chrome", passcode_hash="x$y")

    def reward(remote_id: str, trees: int, name: str) -> str:
        SandboxReward.objects.create(
            campaign=campaign,
            remote_id=remote_id,
            transaction_id=f"t-{remote_id}",
            recipient_email=f"{remote_id}-a-rather-long-address@example.com",
            name=name,
            created=dt.datetime(2026, 5, 14, 10, tzinfo=dt.UTC),
            tree_count=trees,
            url=f"http://testserver/sandbox/rewards/{remote_id}/",
        )
        return f"/sandbox/rewards/{remote_id}/"

    return {
        "few": reward("r-chrome-few", 3, "Ann Example"),
        "many": reward("r-chrome-many", 150, ""),
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_the_login_and_logged_out_pages_fit_the_window_and_say_so(width, browser_page, marketer):
    page = browser_page
    page.set_viewport_size(WIDTHS[width])
    page.goto("/accounts/login/")
    assert page.locator("h1").inner_text() == "Log in to your account"
    assert page.locator(".page-center .card").count() == 1
    assert_fits(page, "login")

    login_as(page, marketer)
    if page.locator(".navbar-toggler").is_visible():  # the folded menu at phone width
        page.locator(".navbar-toggler").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    assert page.url.endswith("/login/")
    assert "You have been logged out." in page.locator("main").inner_text()
    assert_fits(page, "logged out")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_locked_out_page_fits_the_window(width, browser_page, marketer):
    page = browser_page
    page.set_viewport_size(WIDTHS[width])
    page.goto("/accounts/login/")
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        page.fill("input[name=login]", marketer.username)
        page.fill("input[name=password]", "a wrong guess")
        with page.expect_navigation():
            page.click("form button[type=submit]")
    assert page.locator("h1").inner_text() == "Too many failed logins"
    assert_fits(page, "locked out")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_error_pages_have_the_navigation_and_fit_the_window(width, page_as, settings):
    page = page_as("marketer")
    page.set_viewport_size(WIDTHS[width])

    response = page.goto("/no-such-page/")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Page not found"
    assert page.locator("header.navbar").count() == 1
    assert_fits(page, "404")

    response = page.goto("/campaigns/")
    assert response.status == 403
    assert page.locator("h1").inner_text() == "Not allowed"
    assert_fits(page, "403")

    settings.ROOT_URLCONF = "tests.test_error_pages"
    response = page.goto("/boom/")
    assert response.status == 500
    assert page.locator("h1").inner_text() == "Something went wrong"
    assert page.locator("header.navbar").count() == 1
    assert_fits(page, "500")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_paid_twice_page_fits_the_window(width, page_as, marketer):
    from campaigns.models import Campaign

    campaign = Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")
    when = dt.datetime(2026, 5, 14, 10, tzinfo=dt.UTC)
    send_add(
        campaign,
        remote_id="r-first-0001",
        sent_at=when,
        by=marketer,
        recipient="someone.with.a.long.address@example.com",
        paid_twice_at=when + dt.timedelta(hours=2),
        duplicate_remote_id="r-second-0002",
    )
    page = page_as("marketer")
    page.set_viewport_size(WIDTHS[width])
    page.goto("/rewards/batches/paid-twice/")
    assert page.locator("#paid-twice tbody tr").count() == 1
    assert_fits(page, "paid twice")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sandbox_reward_page_draws_its_trees_without_emoji_and_fits_the_window(
    width, browser_page, sandbox_rewards
):
    page = browser_page
    page.set_viewport_size(WIDTHS[width])
    page.goto(sandbox_rewards["few"])
    assert page.locator(".trees svg.tree").count() == 3
    assert "🌳" not in page.content()
    # The symbol is drawn: a tree has a size on the page.
    box = page.locator(".trees svg.tree").first.bounding_box()
    assert box and box["width"] > 10 and box["height"] > 10
    assert_fits(page, "reward, 3 trees")

    page.goto(sandbox_rewards["many"])
    assert page.locator(".trees svg.tree").count() == 100
    assert "The first 100 of 150 trees are drawn." in page.locator("main").inner_text()
    assert_fits(page, "reward, 150 trees")
    screenshot(page, f"reward-many-{width}")
