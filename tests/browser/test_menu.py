"""The navigation at phone and desktop width, with and without JavaScript, and the keyboard's
way past it (templates/includes/_nav.html, templates/base.html, static/css/noscript.css)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import TIMEOUT_MS, login_as, screenshot, screenshot_root

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
MENU_BUTTON = "button.navbar-toggler"


def _admin_page(browser, live_server, admin_user, viewport, javascript=True):
    context = browser.new_context(
        base_url=live_server.url, viewport=viewport, java_script_enabled=javascript
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    login_as(page, admin_user)
    return context, page


# The admin's sections: Overview, Send rewards, Batches, Approvals, Rewards, Reports, Campaigns,
# Team, Audit, Webhooks.
ADMIN_SECTIONS = 10


def _links(page):
    return page.locator("nav[aria-label=Main] a.nav-link")


def test_at_phone_width_the_navigation_is_folded_into_a_menu_button_that_opens_it(page_as):
    page = page_as("admin")
    page.set_viewport_size(PHONE)
    page.goto("/")
    links = _links(page)
    assert links.count() == ADMIN_SECTIONS
    assert not links.first.is_visible(), "the links show at phone width before the menu opens"
    button = page.locator(MENU_BUTTON)
    assert button.is_visible()
    assert button.get_attribute("aria-expanded") == "false"
    button.click()
    # Opened, its folding animation over (Bootstrap swaps .collapsing for .collapse.show).
    page.locator("#navbar-menu.collapse.show").wait_for()
    assert all(links.nth(i).is_visible() for i in range(links.count()))
    assert button.get_attribute("aria-expanded") == "true"
    assert page.get_by_role("button", name="Log out").is_visible()
    screenshot(page, "menu-open-390")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]


def test_at_desktop_width_the_links_show_and_there_is_no_menu_button(page_as):
    page = page_as("admin")
    page.goto("/")
    links = _links(page)
    assert links.count() == ADMIN_SECTIONS
    assert all(links.nth(i).is_visible() for i in range(links.count()))
    assert not page.locator(MENU_BUTTON).is_visible()


def test_with_javascript_off_the_menu_stands_open_at_phone_width(
    browser, live_server, admin_user, menu_folder
):
    context, page = _admin_page(browser, live_server, admin_user, PHONE, javascript=False)
    try:
        page.goto("/")
        page.screenshot(path=str(menu_folder / "menu-no-javascript-390.png"))
        links = _links(page)
        assert links.count() == ADMIN_SECTIONS
        assert all(links.nth(i).is_visible() for i in range(links.count()))
        # A button that could not open anything is not offered.
        assert not page.locator(MENU_BUTTON).is_visible()
        assert page.get_by_role("button", name="Log out").is_visible()
    finally:
        context.close()


def test_the_first_tab_stop_skips_to_the_content(page_as):
    page = page_as("admin")
    page.goto("/rewards/")
    skip = page.get_by_role("link", name="Skip to the content")
    assert not skip.is_visible() or skip.bounding_box()["width"] <= 1, "shown before focus"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to the content"
    assert skip.is_visible(), "the skip link stays hidden when it has the focus"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


@pytest.mark.parametrize(
    ("path", "link", "current"),
    [
        ("/", "Overview", "page"),
        ("/rewards/", "Rewards", "page"),
        ("/rewards/batches/", "Batches", "page"),
        ("/rewards/batches/paid-twice/", "Batches", "true"),
    ],
)
def test_the_link_of_the_section_open_is_marked_current(page_as, path, link, current):
    page = page_as("admin")
    page.goto(path)
    marked = page.locator("nav[aria-label=Main] a[aria-current]")
    assert marked.count() == 1
    assert marked.inner_text().strip() == link
    assert marked.get_attribute("aria-current") == current


@pytest.fixture
def menu_folder():
    folder = screenshot_root() / "menu"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
