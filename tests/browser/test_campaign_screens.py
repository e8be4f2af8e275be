"""The campaign screens in the browser, at phone and desktop width: adding a campaign (its
credentials checked with the sandbox on save), Check connection, Disable's own page, Enable,
and the history in words. Nothing may make a page wider than the window."""

from __future__ import annotations

import pytest

from campaigns.models import Campaign
from sandbox.models import SandboxReward
from sandbox.services import sandbox_campaign_save
from tests.browser.conftest import reauthenticate_if_asked, screenshot

pytestmark = pytest.mark.browser

PASSCODE = "Browser-Secret-passcode"
WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


def assert_no_sideways_scroll(page) -> None:
    wide = page.evaluate("document.documentElement.scrollWidth")
    window = page.evaluate("window.innerWidth")
    if wide > window:
        offenders = page.evaluate(
            """w => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > w + 1)
                .slice(0, 8)
                .map(e => `${e.tagName}.${e.className} ${e.getBoundingClientRect().right}`)""",
            window,
        )
    else:
        offenders = []
    assert wide <= window, f"{page.url}: {wide}px wide in a {window}px window: {offenders}"


def click_and_wait(page, role: str, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role(role, name=name, exact=True).click()
    assert_no_sideways_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_an_admin_adds_checks_disables_and_enables_a_campaign(page_as, sandbox, width):
    sandbox_campaign_save(campaign_id="spring-2027", passcode=PASSCODE)
    page = page_as("admin")
    page.set_viewport_size(WIDTHS[width])
    page.goto("/campaigns/")
    assert_no_sideways_scroll(page)
    click_and_wait(page, "link", "New campaign")
    reauthenticate_if_asked(page)
    page.fill("input[name=name]", "Spring planting")
    page.fill("input[name=campaign_id]", "spring-2027-typo")
    page.fill("input[name=passcode]", PASSCODE)
    page.fill("textarea[name=notes]", "Trees for the spring newsletter.")
    screenshot(page, f"{width}-form-filled")

    # A typo in the campaign ID: Mokugift refuses it, nothing is saved, Save anyway is offered.
    click_and_wait(page, "button", "Check and save")
    alert = page.locator("#check-failed")
    assert "Invalid campaign ID (Mokugift error 101)" in alert.inner_text()
    assert page.get_by_role("button", name="Save anyway").is_visible()
    assert not Campaign.objects.exists()
    assert PASSCODE not in page.content()
    screenshot(page, f"{width}-check-refused")

    page.fill("input[name=campaign_id]", "spring-2027")
    page.fill("input[name=passcode]", PASSCODE)  # never sent back: typed again
    click_and_wait(page, "button", "Check and save")
    assert page.get_by_role("heading", name="Spring planting").is_visible()
    assert (
        "Mokugift accepts the campaign ID and passcode." in page.locator(".messages").inner_text()
    )
    check = page.locator("#connection-check")
    assert "Accepted" in check.inner_text()

    # The sandbox campaign is switched off at Mokugift: the button says so.
    # With JavaScript the card and the history change in place, without a reload.
    sandbox_campaign_save(campaign_id="spring-2027", enabled=False)
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Check connection").click()
    page.locator("#connection-check", has_text="Campaign disabled (Mokugift error 103)").wait_for()
    assert "Refused" in check.inner_text()
    assert page.evaluate("window.notReloaded") is True
    assert "Refused: Campaign disabled" in page.locator("#history").inner_text()
    screenshot(page, f"{width}-checked-in-place")

    click_and_wait(page, "link", "Disable…")
    assert page.get_by_role("heading", name="Disable Spring planting?").is_visible()
    assert page.get_by_text("batches already sending: they carry on until they end").is_visible()
    assert Campaign.objects.get().enabled is True
    click_and_wait(page, "button", "Disable Spring planting")
    assert Campaign.objects.get().enabled is False
    click_and_wait(page, "button", "Enable")
    assert Campaign.objects.get().enabled is True

    history = page.locator("#history").inner_text()
    for sentence in (
        "Enabled: no → yes",
        "Enabled: yes → no",
        "Refused: Campaign disabled (Mokugift error 103)",
        "Mokugift campaign ID set to spring-2027",
        "Passcode set",
    ):
        assert sentence in history
    assert "['" not in history and "None" not in history
    assert PASSCODE not in page.content()
    screenshot(page, f"{width}-detail")

    page.goto("/campaigns/")
    assert_no_sideways_scroll(page)
    row = page.locator("#campaigns tbody tr")
    assert row.count() == 1
    assert "Refused" in row.inner_text()
    # The checks made no reward at the sandbox.
    assert SandboxReward.objects.count() == 0
