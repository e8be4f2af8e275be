"""The Content-Security-Policy in a real browser: a javascript: link that reached a page (a
reward URL stored before the client refused them) does not run when clicked."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.mirror.helpers import mirror_add, send_add

pytestmark = pytest.mark.browser


def test_a_javascript_link_on_the_reward_page_does_not_run_when_clicked(page_as, marketer):
    from campaigns.models import Campaign

    campaign = Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")
    reward = mirror_add(campaign, dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
    reward.send = send_add(
        campaign,
        remote_id=reward.remote_id,
        sent_at=reward.date,
        by=marketer,
        url="javascript:document.title='ran';alert(document.domain)//",
    )
    reward.save()
    page = page_as("manager")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(f"/rewards/reward/{reward.pk}/")
    page.click("#ledger-facts a[href^='javascript:']")
    page.wait_for_timeout(300)

    assert dialogs == []
    assert page.title() != "ran"
    assert any("javascript:" in line or "script-src" in line for line in page._csp_refused)
    page._csp_refused.clear()  # refused on purpose
