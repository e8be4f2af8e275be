"""An admin invites a marketer for one campaign on the Team page; the marketer follows the
link in the mail (a real SMTP server), chooses a password, signs in and sees that campaign
alone on the send page."""

from __future__ import annotations

import pytest

from campaigns.services import campaign_create
from tests.browser.conftest import reauthenticate_if_asked, screenshot
from tests.mail import links

NEW_PASSWORD = "nina's own long password"


@pytest.mark.parametrize("width", [1280, 390])
def test_an_admin_invites_a_marketer_who_signs_in_and_sees_one_campaign(
    page_as, _new_page, smtp_server, cast, width
):
    # `cast`: each role's group exists (a live-server test's flush removes the migration's).
    admin_user = cast["admin"]
    for name, campaign_id in (("Spring promo", "spring-1"), ("Autumn promo", "autumn-1")):
        campaign_create(
            actor=None, name=name, campaign_id=campaign_id, environment="sandbox", passcode="p"
        )
    admin = page_as(admin_user)
    admin.set_viewport_size({"width": width, "height": 900})
    admin.goto("/team/")
    screenshot(admin, "team")
    admin.get_by_role("link", name="Invite someone").click()
    # Inviting asks for the password again (a grave act).
    reauthenticate_if_asked(admin)
    admin.fill("input[name=email]", "nina@example.com")
    admin.select_option("select[name=role]", "Marketing")
    admin.get_by_role("checkbox", name="Spring promo (spring-1)", exact=True).check()
    screenshot(admin, "invite form")
    with admin.expect_navigation():
        admin.get_by_role("button", name="Send the invitation").click()
    assert "Invitation sent to nina@example.com" in admin.locator("main").inner_text()
    assert "nina@example.com" in admin.locator("#invitations").inner_text()
    screenshot(admin, "invitation waiting")

    (mail,) = smtp_server.wait_for(to="nina@example.com")
    (link,) = [url for url in links(mail) if "/invitations/" in url]

    nina = _new_page()
    nina.set_viewport_size({"width": width, "height": 900})
    nina.goto(link)
    screenshot(nina, "invitation")
    nina.fill("input[name=username]", "nina")
    nina.fill("input[name=password]", NEW_PASSWORD)
    nina.fill("input[name=password_again]", NEW_PASSWORD)
    with nina.expect_navigation():
        nina.get_by_role("button", name="Join").click()
    assert "/accounts/login/" in nina.url
    nina.fill("input[name=login]", "nina")
    nina.fill("input[name=password]", NEW_PASSWORD)
    with nina.expect_navigation():
        nina.click("form button[type=submit]")
    nina.goto("/rewards/send/")
    screenshot(nina, "send page")
    options = nina.locator("select[name=one-campaign] option").all_inner_texts()
    assert any("Spring promo" in option for option in options), options
    assert not any("Autumn promo" in option for option in options), options
    assert "Autumn promo" not in nina.content()
