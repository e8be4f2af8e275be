"""Notices: who is told what, by a real SMTP server and on the pages; what they turned off is
not sent; a broker or a mail server that is down never fails a send; a person's time zone.

The tasks are not eager here (STYLE.md): a test lets the on-commit callbacks run, checks the
`notices.deliver` message published, then runs that task's body in this process with the
message's own arguments, as a worker would."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from celery.signals import before_task_publish
from django.urls import reverse
from django.utils import timezone

from accounts.services import profile_update
from campaigns import roles
from campaigns.models import Approval, CampaignAccess
from notices.models import Kind, Notice
from notices.tasks import notices_deliver
from rewards.models import Batch, Send
from rewards.services.controls import batch_approve, batch_decline
from rewards.services.sending import (
    PAUSED_FOR_COINS,
    RecipientRow,
    batch_create,
    batch_finish_if_done,
    batch_pause,
)
from tests.conftest import PASSWORD, _role_group, campaign_make
from tests.mail import body_text, links
from tests.worker import broker_down, isolated_broker  # noqa: F401

SMTP_PASSWORD = "smtp-Pa55word-never-logged"
# What the tests enqueue goes to a queue nobody serves: they run the task bodies themselves.
pytestmark = pytest.mark.usefixtures("isolated_broker")


@pytest.fixture
def published():
    """The `notices.deliver` messages this process publishes: their args."""
    seen: list[list] = []

    def record(sender=None, body=None, **_):
        if sender == "notices.deliver":
            seen.append(list(body[0]))

    before_task_publish.connect(record, weak=False)
    yield seen
    before_task_publish.disconnect(record)


@pytest.fixture
def team(admin_user, marketer, manager, db):
    """Everyone with an address: the marketer makes batches, the manager approves them."""
    for person in (admin_user, marketer, manager):
        person.email = f"{person.username}@example.com"
        person.save(update_fields=["email"])
    return {"admin": admin_user, "marketer": marketer, "manager": manager}


def _deliver(published: list[list]) -> None:
    """Run each published notices.deliver as a worker would, and forget it."""
    for args in published:
        assert isinstance(args[0], str) and all(isinstance(a, int) for a in args[1:]), args
        notices_deliver(*args)
    published.clear()


def _batch(campaign, person, n: int = 3) -> Batch:
    return batch_create(
        campaign=campaign,
        mode="link",
        rows=[RecipientRow(row_number=i + 2, recipient=f"r{i}@example.com") for i in range(n)],
        created_by=person,
        source="csv",
    )


def _bell(client) -> int:
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    if 'class="badge bg-red text-red-fg app-bell-count"' not in html:
        return 0
    return int(html.split('data-unread="')[1].split('"')[0])


def _shown(client, person, title: str) -> None:
    """The notice is counted in the bell, shown on /notices/ with its link, then read."""
    client.force_login(person)
    assert _bell(client) >= 1
    response = client.get(reverse("notices:list"))
    assert response.status_code == 200
    assert title in response.content.decode()
    assert _bell(client) == 0
    assert not Notice.objects.filter(user=person, read_at=None).exists()


def test_a_batch_awaiting_approval_is_told_to_the_approvers_who_see_its_campaign(
    team,
    spring,
    smtp_server,
    published,
    client,
    django_user_model,
    django_capture_on_commit_callbacks,
    settings,
):
    settings.SITE_URL = "https://mokudash.example.com"
    autumn = campaign_make("Autumn", "autumn-1")
    elsewhere = django_user_model.objects.create_user(
        username="nora-elsewhere", password=PASSWORD, email="nora@example.com"
    )
    elsewhere.groups.add(_role_group(roles.MANAGER))
    CampaignAccess.objects.create(user=elsewhere, all_campaigns=False).campaigns.add(autumn)
    spring.approval = Approval.ALWAYS
    spring.save(update_fields=["approval"])

    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(spring, team["marketer"])
    assert published == [["approval_needed", batch.pk, 0]]
    _deliver(published)

    told = set(Notice.objects.filter(kind=Kind.APPROVAL_NEEDED).values_list("user", flat=True))
    assert told == {team["manager"].pk, team["admin"].pk}
    (mail,) = smtp_server.wait_for(to="mona-manager@example.com")
    assert mail["Subject"] == f"[mokudash] Batch {batch.pk} on Spring awaits your approval"
    assert "mark-marketer made a batch of 3 rewards on Spring" in body_text(mail)
    batch_url = reverse("rewards:batch_detail", args=[batch.pk])
    assert f"https://mokudash.example.com{batch_url}" in links(mail)
    smtp_server.wait_for(to="alice-admin@example.com")
    assert not [m for m in smtp_server.messages if "mark-marketer" in m["X-Envelope-To"]]
    assert not [m for m in smtp_server.messages if "nora" in m["X-Envelope-To"]]
    assert Notice.objects.filter(emailed_at=None).count() == 0
    _shown(client, team["manager"], f"Batch {batch.pk} on Spring awaits your approval")


def test_its_maker_is_told_when_a_batch_is_approved_or_declined_and_by_whom(
    team,
    spring,
    smtp_server,
    published,
    client,
    django_capture_on_commit_callbacks,
):
    spring.approval = Approval.ALWAYS
    spring.save(update_fields=["approval"])
    with django_capture_on_commit_callbacks(execute=True):
        approved = _batch(spring, team["marketer"])
        declined = _batch(spring, team["marketer"], n=2)
    published.clear()

    with django_capture_on_commit_callbacks(execute=True):
        batch_approve(batch=approved, actor=team["manager"])
        batch_decline(batch=declined, actor=team["manager"], reason="Wrong list, use April's")
    assert ["batch_approved", approved.pk, 0] in published
    assert ["batch_declined", declined.pk, 0] in published
    _deliver(published)

    mails = smtp_server.wait_for(to="mark-marketer@example.com", count=2)
    by_subject = {m["Subject"]: body_text(m) for m in mails}
    yes = by_subject[f"[mokudash] Your batch {approved.pk} on Spring was approved"]
    assert "mona-manager approved your batch of 3 rewards. It is sending now." in yes
    no = by_subject[f"[mokudash] Your batch {declined.pk} on Spring was declined"]
    assert "mona-manager declined your batch of 2 rewards: Wrong list, use April's." in no
    assert set(Notice.objects.values_list("user", flat=True)) == {team["marketer"].pk}
    _shown(client, team["marketer"], f"Your batch {declined.pk} on Spring was declined")


def test_a_finished_batch_tells_its_counts_and_its_failures_by_reason(
    team,
    spring,
    smtp_server,
    published,
    client,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(spring, team["marketer"], n=4)
    published.clear()
    rows = list(Send.objects.filter(batch=batch).order_by("pk"))
    Send.objects.filter(pk__in=[r.pk for r in rows[:2]]).update(state=Send.State.SENT)
    Send.objects.filter(pk__in=[r.pk for r in rows[2:]]).update(
        state=Send.State.FAILED, error_message="No moku-coins left (Mokugift error 105)"
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert batch_finish_if_done(batch_id=batch.pk)
    assert published == [["batch_finished", batch.pk, 0]]
    # Asked again, a batch already done tells nobody twice.
    with django_capture_on_commit_callbacks(execute=True):
        batch_finish_if_done(batch_id=batch.pk)
    assert len(published) == 1
    _deliver(published)

    (mail,) = smtp_server.wait_for(to="mark-marketer@example.com")
    text = body_text(mail)
    assert "Of 4 rewards: 2 sent, 2 failed, 0 unknown." in text
    assert "- 2 × No moku-coins left (Mokugift error 105)" in text
    _shown(client, team["marketer"], f"Your batch {batch.pk} on Spring finished")


def test_a_paused_batch_tells_its_maker_why(
    team,
    spring,
    smtp_server,
    published,
    client,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(spring, team["marketer"])
    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        batch_pause(batch_id=batch.pk, reason=PAUSED_FOR_COINS)
        batch_pause(batch_id=batch.pk, reason=PAUSED_FOR_COINS)  # paused already: no notice
    assert published == [["batch_paused", batch.pk, 0]]
    _deliver(published)

    (mail,) = smtp_server.wait_for(to="mark-marketer@example.com")
    assert PAUSED_FOR_COINS in body_text(mail)
    assert "0 of 3 rewards sent so far; 3 wait until it is resumed." in body_text(mail)
    _shown(client, team["marketer"], f"Your batch {batch.pk} on Spring paused")


def test_the_admins_are_told_at_80_and_100_percent_of_a_monthly_budget(
    team,
    spring,
    smtp_server,
    published,
    client,
    django_capture_on_commit_callbacks,
):
    spring.monthly_budget = 5
    spring.save(update_fields=["monthly_budget"])
    with django_capture_on_commit_callbacks(execute=True):
        first = _batch(spring, team["marketer"], n=4)
    assert ["budget_80", first.pk, spring.pk] in published
    _deliver(published)
    (mail,) = smtp_server.wait_for(to="alice-admin@example.com")
    assert mail["Subject"] == "[mokudash] Spring used 80 % of its monthly budget"
    assert "4 of 5 used this month" in body_text(mail)
    assert reverse("campaigns:detail", args=[spring.pk]) in links(mail)[0]

    with django_capture_on_commit_callbacks(execute=True):
        second = _batch(spring, team["marketer"], n=1)
    assert ["budget_100", second.pk, spring.pk] in published
    _deliver(published)
    mails = smtp_server.wait_for(to="alice-admin@example.com", count=2)
    assert "5 of 5 used this month" in body_text(mails[1])
    assert set(Notice.objects.values_list("user", flat=True)) == {team["admin"].pk}
    client.force_login(team["admin"])
    assert _bell(client) == 2
    _shown(client, team["admin"], "Spring used all of its monthly budget")


def test_a_row_paid_twice_tells_its_maker_and_the_admins(
    team,
    spring,
    smtp_server,
    published,
    client,
    django_capture_on_commit_callbacks,
):
    from rewards.services import reconcile

    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(spring, team["marketer"], n=2)
    published.clear()
    first, second = Send.objects.filter(batch=batch).order_by("pk")
    Send.objects.filter(pk=first.pk).update(state=Send.State.SENT, remote_id="901")
    Send.objects.filter(pk=second.pk).update(state=Send.State.SENT, remote_id="902")
    first.refresh_from_db()
    second.refresh_from_db()

    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile._flag_pair(first, row_remote_id="901", other=second, now=timezone.now())
    assert published == [["paid_twice", batch.pk, 0]]
    _deliver(published)

    (mail,) = smtp_server.wait_for(to="mark-marketer@example.com")
    assert "2 rows of batch" in body_text(mail)
    smtp_server.wait_for(to="alice-admin@example.com")
    title = f"A recipient of batch {batch.pk} on Spring was paid twice"
    _shown(client, team["admin"], title)
    _shown(client, team["marketer"], title)


def test_a_kind_turned_off_is_neither_shown_nor_mailed(
    team,
    spring,
    smtp_server,
    published,
    client,
    django_capture_on_commit_callbacks,
):
    client.force_login(team["marketer"])
    on = [kind for kind in Kind.values if kind != Kind.BATCH_PAUSED]
    response = client.post(
        reverse("notices:settings"), {"notices_on": on, "time_zone": "Europe/Berlin"}
    )
    assert response.status_code == 302
    profile = team["marketer"].profile
    assert profile.notices_off == ["batch_paused"]
    assert profile.time_zone == "Europe/Berlin"

    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(spring, team["marketer"])
        batch_pause(batch_id=batch.pk, reason=PAUSED_FOR_COINS)
    assert ["batch_paused", batch.pk, 0] in published
    _deliver(published)
    assert not Notice.objects.exists()
    assert smtp_server.messages == []
    assert _bell(client) == 0
    assert "No notices yet" in client.get(reverse("notices:list")).content.decode()


def test_the_settings_page_is_in_the_account_tabs_and_offers_the_time_zones(client, marketer):
    client.force_login(marketer)
    html = client.get(reverse("account_email")).content.decode()
    assert reverse("notices:settings") in html
    html = client.get(reverse("notices:settings")).content.decode()
    assert 'value="Asia/Tokyo"' in html
    assert "Your batch paused" in html
    response = client.post(reverse("notices:settings"), {"time_zone": "Mars/Olympus"})
    assert response.status_code == 200
    assert not hasattr(marketer, "profile") or marketer.profile.time_zone == ""


@pytest.mark.usefixtures("broker_down")
def test_a_broker_that_is_down_never_fails_a_send(
    team, spring, caplog, django_capture_on_commit_callbacks
):
    spring.approval = Approval.ALWAYS
    spring.save(update_fields=["approval"])
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        batch = _batch(spring, team["marketer"])
    assert Batch.objects.filter(pk=batch.pk, state=Batch.State.AWAITING_APPROVAL).exists()
    assert Send.objects.filter(batch=batch).count() == 3
    assert "could not enqueue notices.deliver" in caplog.text


def test_a_mail_server_that_is_down_leaves_the_notice_unmailed_and_logs_no_secret(
    team,
    spring,
    settings,
    published,
    caplog,
    client,
    django_capture_on_commit_callbacks,
):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the probe goes: nobody listens there
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": "127.0.0.1",
                "port": port,
                "timeout": 2,
                "username": "mokudash",
                "password": SMTP_PASSWORD,
            },
        }
    }
    spring.approval = Approval.ALWAYS
    spring.save(update_fields=["approval"])
    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(spring, team["marketer"])
    assert Batch.objects.filter(pk=batch.pk).exists()
    with caplog.at_level(logging.WARNING):
        _deliver(published)
    assert Notice.objects.filter(user=team["manager"], emailed_at=None).count() == 1
    assert "not mailed" in caplog.text
    assert SMTP_PASSWORD not in caplog.text
    _shown(client, team["manager"], f"Batch {batch.pk} on Spring awaits your approval")


def test_pages_show_times_in_the_persons_own_zone(
    client, marketer, django_capture_on_commit_callbacks
):
    Notice.objects.create(
        user=marketer,
        kind=Kind.BATCH_FINISHED,
        title="Your batch 1 finished",
        created_at=datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
    )
    client.force_login(marketer)
    assert "2026-01-01 00:00" in client.get(reverse("notices:list")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the zone kept is forgotten
        profile_update(user=marketer, time_zone="Asia/Tokyo", notices_off=[])
    assert "2026-01-01 09:00" in client.get(reverse("notices:list")).content.decode()
    # Each request starts from the server's zone: the zone does not leak past its request.
    assert timezone.get_current_timezone_name() == "UTC"
    client.logout()
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        profile_update(user=marketer, time_zone="", notices_off=[])
    assert "2026-01-01 00:00" in client.get(reverse("notices:list")).content.decode()


def test_a_batch_decided_before_its_notice_ran_asks_no_one_to_approve_it(
    team, spring, smtp_server, published, django_capture_on_commit_callbacks
):
    spring.approval = Approval.ALWAYS
    spring.save(update_fields=["approval"])
    with django_capture_on_commit_callbacks(execute=True):
        batch = _batch(spring, team["marketer"])
        batch_decline(batch=batch, actor=team["manager"], reason="Not this month")
    assert [args[0] for args in published] == ["approval_needed", "batch_declined"]
    _deliver(published)
    assert list(Notice.objects.values_list("kind", "user")) == [
        ("batch_declined", team["marketer"].pk)
    ]
