"""Per-campaign access: every person has every campaign or a chosen list; an admin has all.

The every-URL test (tests/test_url_access.py) visits each URL on a campaign the visitor has and
on one they have not; here: the selector itself, the service's own refusal, the filters,
reports and counts, the upload preview, and that only a batch's maker or an admin steers it.
"""

from __future__ import annotations

import csv
import importlib
import io

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from campaigns import roles
from campaigns.models import CampaignAccess
from campaigns.selectors import campaign_ids_visible_to, campaigns_visible_to
from rewards.models import Batch, MirroredReward, Send
from rewards.selectors.overview import overview_for
from rewards.services.sending import (
    ONLY_ITS_CREATOR,
    RecipientRow,
    batch_cancel,
    batch_create,
    batch_resume,
    batch_retry_failed,
)
from tests.conftest import _user, totp_activate

pytestmark = pytest.mark.django_db


def give(user, *campaigns) -> None:
    """The person has these campaigns only."""
    access, _ = CampaignAccess.objects.update_or_create(
        user=user, defaults={"all_campaigns": False}
    )
    access.campaigns.set(campaigns)


@pytest.fixture
def mia(django_user_model):
    """A second marketer, who shares Spring with Mark."""
    return _user(django_user_model, "mia-marketer", roles.MARKETING)


def _batch(campaign, creator, states=("waiting",), **fields) -> Batch:
    batch = Batch.objects.create(
        campaign=campaign, mode="email", source=Batch.Source.CSV, created_by=creator, **fields
    )
    for n, state in enumerate(states):
        Send.objects.create(
            batch=batch, row_number=n + 1, recipient=f"r{n}-{batch.pk}@example.com", state=state
        )
    return batch


def _states(batch) -> list[str]:
    return list(batch.sends.order_by("row_number").values_list("state", flat=True))


# --- The selector ---------------------------------------------------------------------------


def test_a_person_without_a_choice_has_every_campaign(marketer, spring, autumn):
    assert campaign_ids_visible_to(user=marketer) is None
    assert set(campaigns_visible_to(user=marketer)) == {spring, autumn}


def test_a_person_given_all_campaigns_has_every_campaign(marketer, spring, autumn):
    CampaignAccess.objects.create(user=marketer, all_campaigns=True)
    assert campaign_ids_visible_to(user=marketer) is None


def test_a_person_given_a_list_has_those_campaigns_only(marketer, spring, autumn):
    give(marketer, spring)
    assert campaign_ids_visible_to(user=marketer) == (spring.pk,)
    assert list(campaigns_visible_to(user=marketer)) == [spring]


def test_a_person_given_an_empty_list_has_no_campaign(marketer, spring):
    give(marketer)
    assert campaign_ids_visible_to(user=marketer) == ()
    assert not campaigns_visible_to(user=marketer).exists()


def test_an_admin_has_every_campaign_whatever_they_were_given(admin_user, spring, autumn):
    give(admin_user, spring)
    assert campaign_ids_visible_to(user=admin_user) is None


def test_an_anonymous_visitor_or_a_deactivated_person_has_no_campaign(marketer, spring):
    from django.contrib.auth.models import AnonymousUser

    assert campaign_ids_visible_to(user=AnonymousUser()) == ()
    marketer.is_active = False
    assert campaign_ids_visible_to(user=marketer) == ()


def test_the_migration_gives_everyone_who_was_there_every_campaign(marketer, manager):
    migration = importlib.import_module("campaigns.migrations.0005_campaign_access")
    migration.give_everyone_all_campaigns(django_apps, None)
    rows = dict(CampaignAccess.objects.values_list("user__username", "all_campaigns"))
    assert rows == {marketer.username: True, manager.username: True}


# --- Sending --------------------------------------------------------------------------------


def test_a_marketer_cannot_send_on_another_campaign_through_the_service(marketer, spring, autumn):
    give(marketer, spring)
    with pytest.raises(PermissionDenied):
        batch_create(
            campaign=autumn,
            mode="email",
            rows=[RecipientRow(row_number=1, recipient="ann@example.com")],
            created_by=marketer,
            source=Batch.Source.SINGLE,
        )
    assert not Batch.objects.exists()


def test_the_send_form_refuses_another_campaign_and_sends_nothing(client, marketer, spring, autumn):
    give(marketer, spring)
    client.force_login(marketer)
    page = client.get(reverse("rewards:send")).content.decode()
    assert "Spring" in page and "Autumn" not in page
    answer = client.post(
        reverse("rewards:send_one"),
        {
            "one-campaign": autumn.pk,
            "one-mode": "email",
            "one-recipient": "ann@example.com",
            "one-idempotency_key": "k" * 32,
        },
    )
    assert answer.status_code == 200
    assert "Choose one of the enabled campaigns." in answer.content.decode()
    assert not Batch.objects.exists()


def test_a_marketer_without_a_campaign_is_told_there_is_none_to_send_on(client, marketer, spring):
    give(marketer)
    client.force_login(marketer)
    page = client.get(reverse("rewards:send")).content.decode()
    assert "Spring" not in page


def test_an_upload_whose_campaign_was_taken_away_is_gone_and_cannot_be_confirmed(
    client, marketer, spring, settings, tmp_path
):
    settings.UPLOADS_DIR = tmp_path / "uploads"
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(marketer)
    answer = client.post(
        reverse("rewards:send_upload"),
        {
            "bulk-campaign": spring.pk,
            "bulk-mode": "email",
            "bulk-file": SimpleUploadedFile("l.csv", b"email\nann@example.com\n", "text/csv"),
        },
    )
    preview = answer["Location"]
    assert client.get(preview).status_code == 200
    give(marketer)  # Spring taken away
    assert client.get(preview)["Location"] == reverse("rewards:send")
    assert client.get(preview + "problems.csv").status_code == 404
    assert client.post(preview, {}).status_code == 302
    assert not Batch.objects.exists()


# --- Only the maker or an admin steers a batch ----------------------------------------------


def test_a_marketer_sees_a_teammates_batch_without_the_buttons(client, marketer, mia, spring):
    give(marketer, spring)
    give(mia, spring)
    batch = _batch(spring, marketer, ["waiting", "failed"], state=Batch.State.PAUSED)
    client.force_login(mia)
    page = client.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()
    assert str(batch.pk) in page
    for button in ('id="cancel-batch"', 'id="resume-batch"', 'id="retry-failed"'):
        assert button not in page
    assert 'id="resume-by-creator"' in page and "mark-marketer" in page
    client.force_login(marketer)
    page = client.get(reverse("rewards:batch_detail", args=[batch.pk])).content.decode()
    for button in ('id="cancel-batch"', 'id="resume-batch"', 'id="retry-failed"'):
        assert button in page


@pytest.mark.parametrize("action", ["batch_cancel", "batch_resume", "batch_retry_failed"])
def test_only_its_maker_or_an_admin_may_cancel_resume_or_retry_a_batch(
    client, marketer, mia, admin_user, spring, action
):
    give(marketer, spring)
    give(mia, spring)
    batch = _batch(spring, marketer, ["waiting", "failed"], state=Batch.State.PAUSED)
    url = reverse(f"rewards:{action}", args=[batch.pk])
    client.force_login(mia)
    answer = client.post(url)
    assert answer.status_code == 403
    assert "Only the person who made this batch, or an admin" in answer.content.decode()
    batch.refresh_from_db()
    assert batch.state == Batch.State.PAUSED and _states(batch) == ["waiting", "failed"]
    for who in (marketer, admin_user):
        client.force_login(who)
        assert client.post(url).status_code == 302


def test_the_services_refuse_a_teammate_too(marketer, mia, admin_user, spring):
    batch = _batch(spring, marketer, ["waiting", "failed"], state=Batch.State.PAUSED)
    for steer in (batch_cancel, batch_resume, batch_retry_failed):
        with pytest.raises(PermissionDenied, match=ONLY_ITS_CREATOR[:20]):
            steer(batch=batch, actor=mia)
    assert _states(batch) == ["waiting", "failed"]
    assert batch_resume(batch=batch, actor=admin_user)
    assert batch_cancel(batch=batch, actor=None) == 1  # the command line


def test_the_batch_list_shows_only_the_campaigns_of_the_person(
    client, marketer, mia, spring, autumn
):
    give(mia, spring)
    mine = _batch(spring, marketer)
    elsewhere = _batch(autumn, marketer)
    client.force_login(mia)
    page = client.get(reverse("rewards:batch_list")).content.decode()
    assert reverse("rewards:batch_detail", args=[mine.pk]) in page
    assert reverse("rewards:batch_detail", args=[elsewhere.pk]) not in page
    assert client.get(reverse("rewards:batch_detail", args=[elsewhere.pk])).status_code == 404


# --- Browsing, reports, exports, counts, the home page ---------------------------------------


@pytest.fixture
def rewarded(marketer, spring, autumn):
    """A sent, mirrored reward on each campaign, in May 2026."""
    for campaign, email in ((spring, "sally@spring.example"), (autumn, "otto@autumn.example")):
        batch = _batch(campaign, marketer, ["sent"], state=Batch.State.DONE)
        send = batch.sends.get()
        Send.objects.filter(pk=send.pk).update(
            recipient=email, remote_id=f"R-{email}", sent_at="2026-05-10T10:00:00Z"
        )
        MirroredReward.objects.create(
            campaign=campaign,
            remote_id=f"R-{email}",
            recipient_email=email,
            date="2026-05-10T10:00:00Z",
            first_seen_at="2026-05-10T10:00:00Z",
            last_seen_at="2026-05-10T10:00:00Z",
            send=send,
        )


def test_the_rewards_page_counts_filters_and_exports_only_the_persons_campaigns(
    client, manager, spring, autumn, rewarded
):
    give(manager, spring)
    client.force_login(manager)
    page = client.get(reverse("rewards:list")).content.decode()
    assert "sally@spring.example" in page and "otto@autumn.example" not in page
    # Another campaign's number is not a choice: left out, never a way in.
    page = client.get(reverse("rewards:list"), {"campaign": autumn.pk}).content.decode()
    assert "otto@autumn.example" not in page
    answer = client.get(reverse("rewards:list_csv"), {"campaign": autumn.pk})
    rows = list(csv.reader(io.StringIO(b"".join(answer.streaming_content).decode())))
    assert not [row for row in rows if "otto@autumn.example" in row]
    answer = client.get(reverse("rewards:list_csv"))
    body = b"".join(answer.streaming_content).decode()
    assert "sally@spring.example" in body and "otto@autumn.example" not in body


def test_the_report_counts_only_the_persons_campaigns_and_another_is_not_found(
    client, manager, spring, autumn, rewarded
):
    give(manager, spring)
    client.force_login(manager)
    answer = client.get(reverse("rewards:report"), {"year": 2026})
    report = answer.context["report"]
    assert report.totals.ours_rewards == 1
    assert [c["campaign"] for c in report.by_campaign] == ["Spring"]
    for name in ("rewards:report", "rewards:report_csv", "rewards:report_xlsx"):
        answer = client.get(reverse(name), {"year": 2026, "campaign": autumn.pk})
        assert answer.status_code == 404, name
    body = b"".join(
        client.get(reverse("rewards:report_csv"), {"year": 2026}).streaming_content
    ).decode()
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    may = next(row for row in rows if row["month"] == "May")
    assert may["dashboard_rewards"] == "1"


def test_a_manager_with_no_campaign_sees_an_empty_report_not_everything(
    client, manager, spring, rewarded
):
    give(manager)
    client.force_login(manager)
    report = client.get(reverse("rewards:report"), {"year": 2026}).context["report"]
    assert report.totals.ours_rewards == 0 and report.by_campaign == []
    assert "sally@spring.example" not in client.get(reverse("rewards:list")).content.decode()


def test_the_home_page_counts_only_the_persons_campaigns(marketer, spring, autumn, rewarded):
    everything = overview_for(user=marketer)
    give(marketer, spring)
    from campaigns.selectors import campaign_access_forget

    campaign_access_forget(user=marketer)
    mine = overview_for(user=marketer)
    assert sum(m.sent for m in everything.months) == 2
    assert sum(m.sent for m in mine.months) == 1
    assert {b.campaign for b in mine.recent} == {"Spring"}


def test_a_refresh_queues_only_the_persons_campaigns(client, manager, spring, autumn, monkeypatch):
    from rewards.services import sync

    queued: list[int] = []
    monkeypatch.setattr(
        sync, "sync_enqueue", lambda *, campaign_ids, year, month: queued.extend(campaign_ids)
    )
    give(manager, spring)
    client.force_login(manager)
    assert client.post(reverse("rewards:sync_refresh")).status_code == 302
    assert queued == [spring.pk]
    queued.clear()
    client.post(reverse("rewards:sync_refresh"), {"campaign": autumn.pk})
    assert queued == [spring.pk]  # not a choice: left out, so the person's own


def test_the_django_admin_chooses_a_persons_campaigns(client, django_user_model, marketer, spring):
    boss = django_user_model.objects.create_superuser(username="root", password="x" * 20)
    totp_activate(boss)  # a superuser counts as an Admin, who must use two-factor sign-in
    client.force_login(boss)
    add = reverse("admin:campaigns_campaignaccess_add")
    assert client.get(add).status_code == 200
    answer = client.post(add, {"user": marketer.pk, "campaigns": [spring.pk]})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert campaign_ids_visible_to(user=django_user_model.objects.get(pk=marketer.pk)) == (
        spring.pk,
    )
