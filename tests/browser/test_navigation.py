"""Each role logs in through the browser and finds in the navigation what it may use, no more."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

# The links of templates/includes/_nav.html (by data-nav) each role must see, and a page each
# role must not open. Add a role's new link here when the navigation grows.
NAVIGATION = {
    "admin": {
        "send",
        "batches",
        "approvals",
        "rewards",
        "reports",
        "campaigns",
        "team",
        "audit",
        "webhooks",
    },
    "marketer": {"send", "batches"},
    "manager": {"approvals", "rewards", "reports"},
    "outsider": set(),
}
FORBIDDEN_PAGE = {
    "marketer": "/campaigns/",
    "manager": "/rewards/send/",
    "outsider": "/rewards/",
}


def nav_links(page) -> set[str]:
    return set(page.locator("nav [data-nav]").evaluate_all("els => els.map(e => e.dataset.nav)"))


@pytest.mark.parametrize("role", NAVIGATION)
def test_the_navigation_offers_each_role_what_it_may_use(page_as, role):
    page = page_as(role)
    assert nav_links(page) == NAVIGATION[role]
    for link in NAVIGATION[role]:
        page.goto("/")
        with page.expect_navigation() as navigation:
            page.click(f"nav [data-nav={link}]")
        status = navigation.value.status
        assert status == 200, f"{role} followed {link} to {page.url}: {status}"


@pytest.mark.parametrize("role", FORBIDDEN_PAGE)
def test_a_page_outside_the_role_answers_403(page_as, role):
    page = page_as(role)
    response = page.goto(FORBIDDEN_PAGE[role])
    assert response.status == 403
    # Our own page, inside the layout, with the way back.
    assert page.get_by_role("heading", name="Not allowed").is_visible()
    assert page.locator("nav [data-nav]").count() == len(NAVIGATION[role])


def test_an_outsider_is_told_they_have_no_role_yet(page_as):
    page = page_as("outsider")
    assert page.get_by_text("Your account has no role yet").is_visible()


def test_an_anonymous_visitor_is_sent_to_the_login_page(browser_page):
    browser_page.goto("/campaigns/")
    assert "/login/" in browser_page.url
    assert browser_page.locator("nav [data-nav]").count() == 0
    assert browser_page.locator("input[name=password]").is_visible()


def test_logging_out_ends_the_session(page_as):
    page = page_as("admin")
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    assert "/accounts/login/" in page.url
    page.goto("/campaigns/")
    assert "/accounts/login/" in page.url


# Adding a campaign, its connection check and its history: tests/browser/test_campaign_screens.py.
