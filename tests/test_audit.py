"""The audit trail's page: the acts of the other tests' kinds listed in words, with filters,
pages and a CSV of the filter; read-only in the Django admin; never a secret."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import services as team
from audit.models import AuditEvent, Kind
from campaigns import roles
from campaigns.services import campaign_create, campaign_passcode_replace
from rewards.models import Batch, Send
from rewards.services.sending import batch_cancel
from tests.conftest import PASSWORD, reauthenticate, totp_code

pytestmark = pytest.mark.django_db
SECRET_PASSCODE = "correct-horse-passcode-42"


@pytest.fixture
def spring(admin_user):
    return campaign_create(
        actor=admin_user,
        name="Spring",
        campaign_id="spring-1",
        environment="sandbox",
        passcode=SECRET_PASSCODE,
    )


def _acts(client, admin_user, marketer, spring):
    """Sign-in, a failed sign-in, an invitation, a role change, a cancelled batch, an export
    and a passcode change, as people would do them."""
    client.post(reverse("account_login"), {"login": "nobody-here", "password": "guess"})
    client.post(reverse("account_login"), {"login": admin_user.username, "password": PASSWORD})
    client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    reauthenticate(client)
    client.post(
        reverse("accounts:invite"),
        {"email": "nina@example.com", "role": roles.MARKETING, "campaigns": [spring.pk]},
    )
    team.person_role_set(actor=admin_user, person=marketer, role=roles.MANAGER)
    batch = Batch.objects.create(
        campaign=spring, mode="email", source=Batch.Source.CSV, created_by=admin_user
    )
    Send.objects.create(batch=batch, row_number=1, recipient="a@example.com")
    batch_cancel(batch=batch, actor=admin_user)
    client.get(reverse("rewards:list_csv"), {"campaign": spring.pk})
    campaign_passcode_replace(campaign=spring, actor=admin_user, passcode=SECRET_PASSCODE + "x")
    return batch


def test_the_audit_page_lists_the_acts_in_words_with_who_and_where(
    client, admin_user, marketer, spring
):
    batch = _acts(client, admin_user, marketer, spring)
    page = client.get(reverse("audit:list")).content.decode()
    for words in (
        "nobody-here: Sign-in failed",
        "alice-admin: Signed in",
        "alice-admin: Invitation sent",
        "alice-admin: Role changed — mark-marketer (from Marketing to Manager)",
        f"alice-admin: Batch cancelled — batch #{batch.pk}, Spring (rows not sent: 1)",
        f"alice-admin: Export downloaded (rewards as CSV; filtered by campaign {spring.pk})",
        "alice-admin: Passcode replaced — Spring (credential replaced)",
        "alice-admin: Campaign added — Spring",
    ):
        assert words in page.replace("&#x27;", "'"), words
    assert "127.0.0.1" in page
    trail = str(list(AuditEvent.objects.values()))
    assert SECRET_PASSCODE not in trail and PASSWORD not in trail and "guess" not in trail


def test_the_filters_keep_what_they_name(client, admin_user, marketer, spring):
    _acts(client, admin_user, marketer, spring)
    url = reverse("audit:list")

    def listed(**query):
        return client.get(url, query).context["page"].paginator.count

    total = AuditEvent.objects.count()
    assert listed(kind="batch") == AuditEvent.objects.filter(kind__startswith="batch.").count()
    assert listed(kind=Kind.SIGN_IN_FAILED.value) == 1
    assert listed(person=marketer.pk) == 1  # the role change, done to them
    assert listed(campaign=spring.pk) == AuditEvent.objects.filter(campaign=spring).count()
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date().isoformat()
    assert listed(date_from=tomorrow) == 0
    assert listed(date_to=tomorrow) == total


def test_the_csv_holds_the_filtered_events(client, admin_user, marketer, spring):
    _acts(client, admin_user, marketer, spring)
    response = client.get(reverse("audit:csv"), {"kind": "campaign"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, *events = rows
    assert header[0] == "time (UTC)"
    kinds = {row[1] for row in events}
    assert kinds and all(kind.startswith("campaign.") for kind in kinds)
    assert len(events) == AuditEvent.objects.filter(kind__startswith="campaign.").count()
    # Downloading the trail is itself in the trail.
    assert AuditEvent.objects.filter(
        kind=Kind.EXPORT_DOWNLOADED, detail__what="audit trail"
    ).exists()


def test_the_audit_page_is_paginated_newest_first(client, admin_user):
    AuditEvent.objects.bulk_create(
        AuditEvent(kind=Kind.SIGN_IN_FAILED, actor_name=f"guess-{n:03}") for n in range(120)
    )
    client.force_login(admin_user)
    first = client.get(reverse("audit:list"))
    assert first.context["page"].paginator.num_pages >= 3
    assert "Older →" in first.content.decode()
    last = client.get(reverse("audit:list"), {"page": 3}).content.decode()
    assert "guess-000" in last


def test_a_query_string_cannot_put_a_secret_into_the_trail(client, manager):
    client.force_login(manager)
    response = client.get(reverse("rewards:list_csv"), {"password": "hunter2", "q": "x"})
    assert response.status_code == 200
    event = AuditEvent.objects.get(kind=Kind.EXPORT_DOWNLOADED)
    assert "hunter2" not in str(event.detail)


def test_the_django_admin_shows_the_trail_read_only(client, django_user_model):
    from tests.conftest import totp_activate

    root = django_user_model.objects.create_superuser(username="root", password="x" * 20)
    totp_activate(root)
    client.force_login(root)
    event = AuditEvent.objects.create(kind=Kind.SIGN_IN_FAILED, actor_name="mallory")
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"})
    assert AuditEvent.objects.filter(pk=event.pk).exists()
