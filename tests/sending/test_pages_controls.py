"""The spending controls in the pages: a batch that waits for approval, its approval or
decline by a second person (never its maker, whatever the request says), a scheduled send,
and a budget that refuses with the numbers. No worker here: nothing is enqueued past the
test's transaction, so what is checked is the ledger and the pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent, Kind
from campaigns.services import campaign_update
from rewards.models import Batch, Send
from rewards.services.controls import budget_used
from tests.sending.test_pages_send import SEND_ONE, one, upload, uploads_dir  # noqa: F401


def _rows(n: int, who: str = "p") -> str:
    return "email,name\n" + "".join(f"{who}{i}@example.com,P {i}\n" for i in range(n))


def _confirm(client, campaign, n: int, **extra) -> Batch:
    location = upload(client, campaign, _rows(n))["Location"]
    response = client.post(location, extra)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Batch.objects.get()


@pytest.fixture
def above_100(campaign):
    return campaign_update(campaign=campaign, actor=None, approval="above", approval_above=100)


def test_a_batch_above_the_rule_waits_for_approval_and_none_of_it_is_claimable(
    as_marketer, above_100
):
    batch = _confirm(as_marketer, above_100, 150)
    assert (batch.state, batch.approval_needed, batch.budget_month) == (
        Batch.State.AWAITING_APPROVAL,
        True,
        None,
    )
    assert batch.sends.filter(state=Send.State.WAITING).count() == 150
    page = as_marketer.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()
    assert "Awaiting approval" in page and 'id="approve-batch"' not in page
    assert 'id="approval-own"' in page and "Withdraw" in page

    from rewards.services.chunk import sends_claim

    assert sends_claim(batch_id=batch.pk, limit=100) == []


def test_a_batch_within_the_rule_is_sent_at_once(as_marketer, above_100):
    batch = _confirm(as_marketer, above_100, 100)
    assert batch.state == Batch.State.SENDING and not batch.approval_needed


def test_a_manager_sees_it_waiting_in_the_menu_and_approves_it(
    client, as_marketer, above_100, manager
):
    batch = _confirm(as_marketer, above_100, 150)
    client.force_login(manager)
    page = client.get(reverse("rewards:approval_list")).content.decode()
    assert re.search(r'id="approvals-count"[^>]*>1<', page)
    assert f'data-batch="{batch.pk}"' in page
    detail = client.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()
    assert 'id="approve-batch"' in detail and "Approve and send 150" in detail

    response = client.post(reverse("rewards:batch_approve", args=[batch.pk]))
    assert response.status_code == 302
    batch.refresh_from_db()
    assert (batch.state, batch.decided_by) == (Batch.State.SENDING, manager)
    assert AuditEvent.objects.filter(kind=Kind.BATCH_APPROVED, batch_pk=batch.pk).exists()
    page = client.get(reverse("rewards:approval_list")).content.decode()
    assert 'id="approvals-count"' not in page and "Nothing awaits approval" in page


def test_the_maker_cannot_approve_their_own_batch_by_a_crafted_post(client, admin_user, campaign):
    """An admin may approve, but not what they made themselves: the service refuses it."""
    campaign_update(campaign=campaign, actor=None, approval="always")
    client.force_login(admin_user, backend="allauth.account.auth_backends.AuthenticationBackend")
    response = client.post(SEND_ONE, one(campaign))
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert batch.state == Batch.State.AWAITING_APPROVAL
    page = client.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()
    assert 'id="approve-batch"' not in page
    assert client.post(reverse("rewards:batch_approve", args=[batch.pk])).status_code == 403
    assert (
        client.post(
            reverse("rewards:batch_decline", args=[batch.pk]), {"reason": "mine"}
        ).status_code
        == 403
    )
    batch.refresh_from_db()
    assert batch.state == Batch.State.AWAITING_APPROVAL and batch.decided_by is None


def test_a_marketer_cannot_approve_anyone_s_batch(
    client, as_marketer, above_100, django_user_model
):
    from tests.conftest import _user

    batch = _confirm(as_marketer, above_100, 150)
    other = _user(django_user_model, "other-marketer", "Marketing")
    client.force_login(other)
    assert client.post(reverse("rewards:batch_approve", args=[batch.pk])).status_code == 403
    batch.refresh_from_db()
    assert batch.state == Batch.State.AWAITING_APPROVAL


def test_declined_with_a_reason_the_maker_reads_and_nothing_is_sent(
    client, as_marketer, above_100, manager, marketer
):
    batch = _confirm(as_marketer, above_100, 150)
    client.force_login(manager)
    # No reason: refused, still waiting.
    client.post(reverse("rewards:batch_decline", args=[batch.pk]), {"reason": " "})
    batch.refresh_from_db()
    assert batch.state == Batch.State.AWAITING_APPROVAL
    client.post(reverse("rewards:batch_decline", args=[batch.pk]), {"reason": "Wrong list"})
    batch.refresh_from_db()
    assert batch.state == Batch.State.DECLINED
    assert batch.sends.filter(state=Send.State.CANCELLED).count() == 150
    client.force_login(marketer)
    page = client.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()
    assert 'id="declined-banner"' in page and "Wrong list" in page
    assert "hx-trigger" not in page  # nothing more happens: the page stops polling


def test_the_maker_withdraws_a_batch_awaiting_approval(as_marketer, above_100):
    batch = _confirm(as_marketer, above_100, 150)
    as_marketer.post(reverse("rewards:batch_cancel", args=[batch.pk]))
    batch.refresh_from_db()
    assert batch.state == Batch.State.CANCELLED
    assert not batch.sends.exclude(state=Send.State.CANCELLED).exists()


def test_a_scheduled_send_waits_apart_and_can_be_moved(as_marketer, campaign):
    at = (timezone.localtime() + timedelta(days=2)).replace(second=0, microsecond=0)
    as_marketer.post(SEND_ONE, one(campaign, send_at=at.strftime("%Y-%m-%dT%H:%M")))
    batch = Batch.objects.get()
    assert (batch.state, batch.send_at) == (Batch.State.SCHEDULED, at)
    listing = as_marketer.get(reverse("rewards:batch_list")).content.decode()
    upcoming = listing.split('id="upcoming-batches"')[1].split("</table>")[0]
    assert f'data-batch="{batch.pk}"' in upcoming and at.strftime("%H:%M") in upcoming

    later = at + timedelta(days=1)
    as_marketer.post(
        reverse("rewards:batch_reschedule", args=[batch.pk]),
        {"send_at": later.strftime("%Y-%m-%dT%H:%M")},
    )
    batch.refresh_from_db()
    assert (batch.state, batch.send_at) == (Batch.State.SCHEDULED, later)
    assert AuditEvent.objects.filter(kind=Kind.BATCH_RESCHEDULED, batch_pk=batch.pk).exists()


def test_a_time_in_the_past_is_refused_on_the_form(as_marketer, campaign):
    past = timezone.localtime() - timedelta(hours=2)
    response = as_marketer.post(SEND_ONE, one(campaign, send_at=past.strftime("%Y-%m-%dT%H:%M")))
    assert response.status_code == 200
    assert "That time is past" in response.content.decode()
    assert not Batch.objects.exists()


def test_over_the_budget_the_confirmation_is_refused_with_the_numbers(as_marketer, campaign):
    campaign_update(campaign=campaign, actor=None, monthly_budget=500)
    first = _confirm(as_marketer, campaign, 480)
    assert budget_used(campaign_pk=campaign.pk, month=first.budget_month) == 480
    Batch.objects.filter(pk=first.pk).update(idempotency_key=None)
    location = upload(as_marketer, campaign, _rows(60, who="q"))["Location"]
    preview = as_marketer.get(location).content.decode()
    assert "480 of 500" in preview  # the budget is shown before confirming
    response = as_marketer.post(location, {}, follow=True)
    page = response.content.decode()
    assert "480 of 500 used this month; this batch needs 60" in page
    assert Batch.objects.count() == 1  # nothing of the second was written


def test_failed_rows_give_their_budget_back(as_marketer, campaign):
    campaign_update(campaign=campaign, actor=None, monthly_budget=10)
    batch = _confirm(as_marketer, campaign, 10)
    assert budget_used(campaign_pk=campaign.pk, month=batch.budget_month) == 10
    Send.objects.filter(batch=batch, row_number__lte=5).update(state=Send.State.FAILED)
    assert budget_used(campaign_pk=campaign.pk, month=batch.budget_month) == 6


def test_the_campaign_page_sets_the_controls_and_shows_the_budget(client, admin_user, campaign):
    client.force_login(admin_user, backend="allauth.account.auth_backends.AuthenticationBackend")
    url = reverse("campaigns:controls", args=[campaign.pk])
    response = client.post(url, {"approval": "above", "monthly_budget": "500"})
    assert "Say above how many rewards" in response.content.decode()
    response = client.post(
        url, {"approval": "above", "approval_above": "100", "monthly_budget": "500"}
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.approval, campaign.approval_above, campaign.monthly_budget) == (
        "above",
        100,
        500,
    )
    page = client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "Above 100 rewards" in page and "0 of 500 used" in page
    event = AuditEvent.objects.filter(kind=Kind.CAMPAIGN_UPDATED, campaign=campaign).get()
    assert event.detail["monthly_budget"] == [None, 500]
    home = client.get(reverse("home")).content.decode()
    assert 'id="home-budgets"' in home and "500 left" in home


def test_a_manager_without_the_campaign_neither_sees_nor_approves_its_batches(
    client, as_marketer, above_100, manager
):
    from campaigns.models import CampaignAccess

    batch = _confirm(as_marketer, above_100, 150)
    CampaignAccess.objects.create(user=manager, all_campaigns=False)  # no campaign at all
    client.force_login(manager)
    page = client.get(reverse("rewards:approval_list")).content.decode()
    assert f'data-batch="{batch.pk}"' not in page and 'id="approvals-count"' not in page
    assert client.post(reverse("rewards:batch_approve", args=[batch.pk])).status_code == 404
    batch.refresh_from_db()
    assert batch.state == Batch.State.AWAITING_APPROVAL


def test_a_batch_on_a_campaign_disabled_since_cannot_be_approved(
    client, as_marketer, above_100, manager
):
    batch = _confirm(as_marketer, above_100, 150)
    campaign_update(campaign=above_100, actor=None, enabled=False)
    client.force_login(manager)
    page = client.post(reverse("rewards:batch_approve", args=[batch.pk]), follow=True)
    assert "is disabled: enable it first, or decline" in page.content.decode()
    batch.refresh_from_db()
    assert batch.state == Batch.State.AWAITING_APPROVAL


def test_send_at_is_read_in_the_person_s_own_time_zone(client, marketer, campaign):
    from datetime import UTC, datetime

    from accounts.services import profile_update

    profile_update(user=marketer, time_zone="Europe/Berlin", notices_off=[])
    client.force_login(marketer)
    year = timezone.now().year + 1
    client.post(SEND_ONE, one(campaign, send_at=f"{year}-01-15T09:00"))
    batch = Batch.objects.get()
    # 09:00 in Berlin in January is 08:00 UTC.
    assert batch.send_at == datetime(year, 1, 15, 8, 0, tzinfo=UTC)
    page = client.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()
    assert "09:00" in page.split('id="scheduled-at"')[1][:60] and "Europe/Berlin" in page
