"""Every page of every role, at phone width (390 x 844) and desktop width (1280 x 800): the
document is no wider than the window, axe-core finds nothing serious or critical, and a
screenshot of each is saved as $SCREENSHOT_DIR/every_page/<role>-<page>-<width>.png.

The pages are the GET rules of ACCESS in tests/test_url_access.py, opened by each role that
rule allows, with the objects of its `made` fixture; an answer that is not a whole HTML page
(a CSV, an XLSX, the sandbox's JSON, a redirect, an htmx fragment) is not a page. So a new page
is covered as soon as its line is in ACCESS. Besides them: the send preview of a real upload,
the project's own 404 page, and its 403 page for each role that meets one.

axe-core comes from the npm registry (tests/browser/package.json; `make test` installs it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from rewards.models import Send, SyncRun
from tests import test_url_access
from tests.browser.conftest import TIMEOUT_MS, _csp_refusal, login_as, screenshot_root
from tests.conftest import need_service
from tests.test_url_access import ACCESS, ANONYMOUS, ROLES, SENDERS, _url

pytestmark = pytest.mark.browser

# The access test's `made` fixture, so that the detail pages open the objects it makes.
made = test_url_access.made

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {390: {"width": 390, "height": 844}, 1280: {"width": 1280, "height": 800}}
# axe-core's impacts run minor, moderate, serious, critical: the last two fail the test.
FAILING_IMPACTS = ("serious", "critical")
NOT_FOUND_PATH = "/no-such-page/"

# Runs in the page after axe.min.js: the serious and critical violations, with what axe names
# as the culprit of each (a CSS selector) and a line of help.
RUN_AXE = """async (impacts) => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations
    .filter((v) => impacts.includes(v.impact))
    .map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " " + n.html.slice(0, 90)),
      more: Math.max(0, v.nodes.length - 5),
    }));
}"""
# The document's width, and the elements that reach past the window's right edge (the
# innermost ones: a wide table, not every ancestor of it).
MEASURE_WIDTH = """() => {
  const width = window.innerWidth;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + [...e.classList].slice(0, 3).map((c) => "." + c).join("");
  const wide = [...document.querySelectorAll("body *")].filter((e) => {
    const box = e.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) return false;
    for (let p = e.parentElement; p; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (["auto", "scroll", "hidden", "clip"].includes(style.overflowX)) return false;
    }
    return ![...e.children].some((c) => c.getBoundingClientRect().right > width + 1);
  });
  return {
    document: document.documentElement.scrollWidth, window: width,
    wide: wide.slice(0, 5).map((e) => name(e) + " (right edge " + Math.round(
      e.getBoundingClientRect().right) + "px)"),
  };
}"""

# ARIA attributes that name other elements by id, and the names that match no element (a
# screen reader then reads no help, no label, no error).
MISSING_IDREFS = """() => {
  const found = [];
  for (const attribute of ["aria-describedby", "aria-labelledby", "aria-controls", "for"]) {
    for (const element of document.querySelectorAll(`[${attribute}]`)) {
      for (const id of element.getAttribute(attribute).split(/\\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) found.push(`${attribute}="${id}"`);
      }
    }
  }
  return found;
}"""


@dataclass(frozen=True)
class Visit:
    page: str  # the URL name, or a name of our own for the extra pages
    url: str
    status: int = 200


def _is_whole_page(answer) -> bool:
    return (
        answer.status_code == 200
        and answer.get("Content-Type", "").startswith("text/html")
        and answer.get("Content-Disposition") is None
        and b"<html" in answer.content[:1000].lower()
    )


# Pages drawn by a library's own front end, not our templates: the API's docs are Swagger UI
# (django-ninja's copy), whose contrast and nested buttons are its own; tests/browser/
# test_api_docs.py checks that it loads offline under our CSP.
NOT_OURS = {"api:openapi-view"}


def pages_of(role: str, user, made: dict) -> list[Visit]:
    """What `role` may open by ACCESS and is a whole HTML page, and the error pages it meets."""
    client = Client()
    if user is not None:
        client.force_login(user, backend="allauth.account.auth_backends.AuthenticationBackend")
    visits = []
    forbidden = None
    for name, rule in ACCESS.items():
        if rule.method != "GET" or name in NOT_OURS:
            continue
        url = _url(name, rule, made)
        if role not in rule.allowed:
            if role != ANONYMOUS and forbidden is None:
                forbidden = url
            continue
        if rule.ok == 200 and _is_whole_page(client.get(url)):
            visits.append(Visit(name, url))
    visits.append(Visit("not-found", NOT_FOUND_PATH, 404))
    if forbidden:
        visits.append(Visit("not-allowed", forbidden, 403))
    return visits


def _with_rows(made: dict) -> None:
    """The batch of `made` with a row in each state, so its table, tabs and badges show."""
    batch = made["batch"]
    now = timezone.now()
    rows: list[dict] = [
        {"state": Send.State.SENT, "remote_id": "r-every-1", "url": "https://example.com/r/1"},
        {"state": Send.State.FAILED, "error_code": 105, "error_message": "No moku-coins left"},
        {"state": Send.State.UNKNOWN, "attempt_started_at": now, "first_attempt_at": now},
        {"state": Send.State.WAITING},
    ]
    for number, fields in enumerate(rows, start=2):
        Send.objects.create(
            batch=batch,
            row_number=number,
            recipient=f"a.rather.long.address.for.row.{number}@subdomain.example.com",
            name=f"Recipient {number}",
            sent_at=now if fields["state"] == Send.State.SENT else None,
            **fields,
        )


def _open_send_preview(page, made: dict) -> None:
    """Upload two pasted rows on the send page: the preview of a real upload."""
    page.goto(reverse("rewards:send"))
    form = page.locator("form", has=page.locator("[name=bulk-text]"))
    form.locator("select[name=bulk-campaign]").select_option(str(made["campaign"].pk))
    form.locator("[name=bulk-text]").fill("email,name\nann@example.com,Ann\nbob@example.com,Bob")
    with page.expect_navigation():
        form.locator("button[type=submit], input[type=submit]").last.click()


def _check(page, role: str, visit: Visit, width: int, folder: Path) -> list[str]:
    """The width, axe's serious and critical findings and a screenshot of the page open now."""
    where = f"{role} {visit.page} ({page.url}) at {width}"
    problems = []
    measured = page.evaluate(MEASURE_WIDTH)
    if measured["document"] > measured["window"]:
        problems.append(
            f"{where}: the document is {measured['document']}px wide in a "
            f"{measured['window']}px window; past the edge: {', '.join(measured['wide'])}"
        )
    if missing := page.evaluate(MISSING_IDREFS):
        problems.append(f"{where}: no element has the id of {', '.join(missing)}")
    page.screenshot(
        path=str(folder / f"{role}-{visit.page.replace(':', '-')}-{width}.png"), full_page=True
    )
    for violation in page.evaluate(RUN_AXE, list(FAILING_IMPACTS)):
        more = f" (and {violation['more']} more)" if violation["more"] else ""
        problems.append(
            f"{where}: {violation['id']} ({violation['impact']}): {violation['help']}; "
            f"at {' | '.join(violation['targets'])}{more}"
        )
    return problems


@pytest.fixture
def every_page_folder() -> Path:
    folder = screenshot_root() / "every_page"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", (ANONYMOUS, *ROLES))
def test_every_page_of_the_role_fits_the_window_and_has_no_serious_accessibility_problem(
    role, width, browser, live_server, made, cast, every_page_folder, request
):
    if not AXE.exists():
        need_service(f"axe-core at {AXE} (npm ci --prefix tests/browser, or make test)")
    _with_rows(made)
    user = cast.get(role)
    visits = pages_of(role, user, made)
    assert len(visits) > 2, f"{role} opens no page of ACCESS: {visits}"
    # The pages keep their Content-Security-Policy, which refuses a <script> tag added to them
    # (page.add_script_tag): axe comes as an init script instead, which the browser runs in each
    # document before the page's own and no page policy governs.
    context = browser.new_context(base_url=live_server.url, viewport=WIDTHS[width])
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(path=AXE)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: _csp_refusal(message, problems))
    try:
        if user is not None:
            login_as(page, user)
            # Logging in leaves the start page open: its checks come with "home" below.
        for visit in visits:
            response = page.goto(visit.url)
            assert response is not None and response.status == visit.status, (
                f"{role} {visit.page} {visit.url}: {response and response.status}"
            )
            problems += _check(page, role, visit, width, every_page_folder)
        if role in SENDERS:
            _open_send_preview(page, made)
            assert "/preview" in page.url or "preview" in page.content().lower(), page.url
            problems += _check(
                page, role, Visit("rewards:send_preview", page.url), width, every_page_folder
            )
    finally:
        context.close()
    print(f"\n{role} at {width}: {len(visits)} pages, {len(problems)} problems")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


# Live parts of pages with JavaScript off: each says it does not update by itself and offers
# a reload link: who opens which page (its path parameters from `made`).
LIVE_PAGES = {
    "a sending batch": ("marketer", "rewards:batch_detail"),
    "a sync that runs": ("manager", "rewards:list"),
}
NOT_LIVE_SENTENCE = re.compile(r"does not update by itself", re.IGNORECASE)


@pytest.mark.parametrize("what", LIVE_PAGES)
def test_with_javascript_off_a_live_page_says_it_does_not_update_and_offers_a_reload_link(
    what, browser, live_server, made, cast, every_page_folder
):
    role, name = LIVE_PAGES[what]
    if name == "rewards:list":
        SyncRun.objects.create(campaign=made["campaign"], year=2026, month=1)
    else:
        _with_rows(made)  # rows still waiting: the batch is sending, not done
    url = _url(name, ACCESS[name], made)
    context = browser.new_context(
        base_url=live_server.url, viewport=WIDTHS[390], java_script_enabled=False
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        login_as(page, cast[role])
        page.goto(url)
        page.screenshot(
            path=str(every_page_folder / f"{role}-{name.replace(':', '-')}-no-javascript.png"),
            full_page=True,
        )
        notice = page.get_by_text(NOT_LIVE_SENTENCE)
        assert notice.count() >= 1 and notice.first.is_visible(), (
            f"{what} ({url}) says nowhere that it does not update by itself"
        )
        reload = page.get_by_role("link", name=re.compile("reload", re.IGNORECASE))
        assert reload.count() >= 1, f"{what} ({url}) offers no reload link"
        goes_to = reload.first.evaluate("(a) => new URL(a.href, location.href).pathname")
        assert goes_to == url.split("?")[0], f"the reload link goes to {goes_to}, not {url}"
        with page.expect_navigation():
            reload.first.click()
        assert page.url.split("?")[0].endswith(url.split("?")[0])
    finally:
        context.close()


def test_the_axe_pin_is_the_installed_axe():
    """The lock file's axe-core is what node_modules holds (else `npm ci --prefix
    tests/browser` is due), so the checks above run the version the repository names."""
    if not AXE.exists():
        need_service(f"axe-core at {AXE} (npm ci --prefix tests/browser, or make test)")
    lock = json.loads((Path(__file__).parent / "package-lock.json").read_text())
    installed = json.loads((AXE.parent / "package.json").read_text())
    assert installed["version"] == lock["packages"]["node_modules/axe-core"]["version"]
