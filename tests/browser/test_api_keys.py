"""A person makes an API key in the browser from the user menu: the password again, the form,
the key shown once with a copy button, gone on the next page; it works against the API until
they revoke it, which asks first."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from api.models import ApiKey
from tests.browser.conftest import reauthenticate_if_asked, screenshot


@pytest.mark.parametrize("width", [1280, 390])
def test_a_person_makes_a_key_sees_it_once_uses_it_and_revokes_it(page_as, cast, spring, width):
    page = page_as(cast["marketer"])
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size({"width": width, "height": 900})
    if width == 390:
        page.locator("button.navbar-toggler").click()
        page.locator("#navbar-menu.collapse.show").wait_for()
    with page.expect_navigation():
        page.get_by_role("link", name="Your account").click()
    with page.expect_navigation():
        page.get_by_role("link", name="API keys").click()
    assert page.get_by_text("No API keys yet").is_visible()
    with page.expect_navigation():
        page.get_by_role("link", name="Make your first key").click()
    reauthenticate_if_asked(page)
    assert "/accounts/api-keys/new/" in page.url
    page.fill("input[name=name]", "Shop")
    page.get_by_role("checkbox", name="Read").check()
    page.select_option("select[name=expires]", "30")
    screenshot(page, "the form")
    with page.expect_navigation():
        page.get_by_role("button", name="Make the key").click()

    secret = page.locator("#new-api-key").input_value()
    assert secret.startswith("mkd_")
    assert page.get_by_text("you will not see it again").is_visible()
    page.get_by_role("button", name="Copy").click()
    # The button says so once the clipboard's promise is kept: waited for, not looked at once.
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    width_used = page.evaluate("document.documentElement.scrollWidth")
    assert width_used <= width, f"the key's page is {width_used}px wide"

    answer = page.request.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 200

    with page.expect_navigation():
        page.get_by_role("link", name="I have copied it").click()
    assert secret not in page.content()
    key = ApiKey.objects.get()
    row = page.locator(f"#api-key-{key.pk}")
    assert key.prefix in row.inner_text() and "alive" in row.inner_text()
    page.reload()
    assert secret not in page.content()

    with page.expect_navigation():
        row.get_by_role("link", name="Revoke…").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Revoke it").click()
    assert "is revoked" in page.locator("main").inner_text()
    assert "revoked" in page.locator(f"#api-key-{key.pk}").inner_text()
    answer = page.request.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 401
