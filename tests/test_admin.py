"""Django's admin: a campaign and its audit history are only read there, never deleted."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from campaigns.models import Campaign
from campaigns.services import campaign_create
from tests.conftest import totp_activate


@pytest.fixture
def superuser(django_user_model):
    # A superuser counts as an Admin: two-factor sign-in is set up, or nothing opens.
    user = django_user_model.objects.create_superuser(username="sue-superuser", password="x")
    totp_activate(user)
    return user


@pytest.fixture
def campaign(db):
    return campaign_create(
        actor=None, name="Spring", campaign_id="spring-1", environment="sandbox", passcode="p-1"
    )


def test_not_even_a_superuser_may_delete_a_campaign_and_its_history_in_the_admin(
    client, superuser, campaign
):
    client.force_login(superuser)
    delete = reverse("admin:campaigns_campaign_delete", args=[campaign.pk])

    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    client.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "delete_selected", "_selected_action": [campaign.pk], "post": "yes"},
    )

    assert Campaign.objects.filter(pk=campaign.pk).exists()
    assert AuditEvent.objects.filter(campaign=campaign).exists()


def test_an_audit_event_can_be_read_but_not_changed_or_deleted_in_the_admin(
    client, superuser, campaign
):
    client.force_login(superuser)
    event = AuditEvent.objects.get(campaign=campaign)
    change = reverse("admin:audit_auditevent_change", args=[event.pk])

    assert client.get(change).status_code == 200
    assert client.post(change, {"kind": "campaign.disabled"}).status_code == 403
    delete = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).kind == event.kind
