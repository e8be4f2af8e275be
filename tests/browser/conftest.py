"""Browser tests: Playwright's sync API driving Debian's chromium against the live server.

Fixtures:
- `browser`: one chromium for the whole session.
- `browser_page`: a fresh, logged-out page (its own context) on `live_server`.
- `page_as`: `page_as("admin" | "marketer" | "manager" | "outsider" | user)` logs in through the
  real login form and returns the page, on the start page. Call it again for a second person:
  each call has its own context (cookies).
- `login_as(page, user)`: the same login, on a page you already have.

Every page visited is saved as a PNG under $SCREENSHOT_DIR (default test-artifacts/screenshots),
in one folder per test, numbered in order: after each `page.goto`, `with page.expect_navigation()`
block and `page.wait_for_url`, before a `goto` that leaves a page reached otherwise, at the end of
the test, and wherever a test calls `screenshot(page, "step")`.

Mark browser tests `@pytest.mark.browser` (the hook below adds the mark too, so `-m "not
browser"` leaves them all out).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import PASSWORD, need_service, totp_code

# Playwright's sync API runs an asyncio event loop in the main thread while it talks to the
# browser. Django sees that running loop and refuses the synchronous database calls a test makes
# in the same thread (fixtures creating users, checks of rows) with SynchronousOnlyOperation.
# Those calls are really synchronous: the loop only drives the browser, so the check's worry
# (blocking an event loop that serves requests) does not apply. The live server answers the
# browser from its own thread and is not affected.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
# Milliseconds: the live server answers in far less; a hung page fails the test quickly.
TIMEOUT_MS = 10_000

ROLE_FIXTURES = {
    "admin": "admin_user",
    "marketer": "marketer",
    "manager": "manager",
    "outsider": "outsider",
}


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


def screenshot_root() -> Path:
    root = Path(os.environ.get("SCREENSHOT_DIR") or "test-artifacts/screenshots")
    return root if root.is_absolute() else Path(settings.BASE_DIR) / root


class Screenshots:
    """Numbered screenshots of one test, in a folder named after it."""

    def __init__(self, nodeid: str):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", nodeid.removeprefix("tests/")).strip("-")
        self.folder = screenshot_root() / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.count = 0

    def take(self, page, step: str) -> Path:
        self.count += 1
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", step).strip("-")[:80] or "page"
        path = self.folder / f"{self.count:02d}-{slug}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        page._shot_url = page.url
        return path


def _step_name(page) -> str:
    path = page.url.split("://", 1)[-1].partition("/")[2].split("?")[0]
    return path.strip("/").replace("/", "_") or "home"


def screenshot(page, step: str | None = None) -> Path:
    """Save a screenshot of the page now, named `NN-step.png` (step: the URL path if none)."""
    return page._screenshots.take(page, step or _step_name(page))


def _watch(page, shots: Screenshots) -> None:
    """Screenshot after each goto, expect_navigation block and wait_for_url, and the page a
    click led to before a goto leaves it."""
    page._screenshots = shots
    page._shot_url = None
    goto, expect_navigation, wait_for_url = page.goto, page.expect_navigation, page.wait_for_url

    def goto_and_screenshot(url, **kwargs):
        if page.url not in ("about:blank", page._shot_url):
            shots.take(page, _step_name(page))
        response = goto(url, **kwargs)
        shots.take(page, _step_name(page))
        return response

    @contextlib.contextmanager
    def expect_navigation_and_screenshot(*args, **kwargs):
        with expect_navigation(*args, **kwargs) as navigation:
            yield navigation
        shots.take(page, _step_name(page))

    def wait_for_url_and_screenshot(*args, **kwargs):
        wait_for_url(*args, **kwargs)
        shots.take(page, _step_name(page))

    page.goto = goto_and_screenshot
    page.expect_navigation = expect_navigation_and_screenshot
    page.wait_for_url = wait_for_url_and_screenshot


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        need_service(f"chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def _new_page(browser, live_server, request):
    """Makes pages on the live server, each in its own context; all closed after the test."""
    shots = Screenshots(request.node.nodeid)
    contexts = []
    refused: list[str] = []

    def new_page():
        context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        _watch(page, shots)
        page.on("console", lambda message: _csp_refusal(message, refused))
        page._csp_refused = refused
        return page

    yield new_page
    for context in contexts:
        for page in context.pages:
            if page.url != "about:blank" and page.url != page._shot_url:
                shots.take(page, "end")
        context.close()
    # Our pages must work under the Content-Security-Policy: anything it refused is a page
    # that relies on inline script (or another source the policy forbids). A test that
    # provokes a refusal on purpose empties the list.
    assert not refused, "the Content-Security-Policy refused:\n" + "\n".join(refused)


def _csp_refusal(message, refused: list[str]) -> None:
    if message.type == "error" and "Content Security Policy" in message.text:
        refused.append(f"{message.location.get('url', '')}: {message.text}")


@pytest.fixture
def browser_page(_new_page):
    """A fresh page on the live server, logged out; `page.goto("/path/")` is relative to it."""
    return _new_page()


def login_as(page, user) -> None:
    """Log in through the real login form, as a user whose password is the cast's PASSWORD."""
    page.goto("/accounts/login/")
    page.fill("input[name=login]", user.get_username())
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    if "/2fa/authenticate/" in page.url:
        # Two-factor sign-in: the code the person's authenticator app would show.
        page.fill("input[name=code]", totp_code())
        with page.expect_navigation():
            page.click("form button[type=submit]")
    if "/accounts/login/" in page.url or "/2fa/" in page.url:
        raise AssertionError(f"Logging in as {user.get_username()} failed: still on {page.url}")


def reauthenticate_if_asked(page) -> None:
    """The gravest acts (a new campaign, a new passcode, inviting, roles) ask for the password
    again when the last time is over 10 minutes ago: give it, and land where one was going."""
    if "/reauthenticate/" in page.url:
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("form button[type=submit]")


@pytest.fixture
def page_as(_new_page, request):
    """`page_as(role_or_user)`: a new page logged in as that person, on the start page."""

    def log_in(who):
        user = request.getfixturevalue(ROLE_FIXTURES[who]) if isinstance(who, str) else who
        page = _new_page()
        login_as(page, user)
        return page

    return log_in
