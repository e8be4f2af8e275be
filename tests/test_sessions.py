"""Sessions: they end after SESSION_IDLE_MINUTES without a request from the person (an htmx
poll is none), each person sees and ends their own, and they are recorded at sign-in."""

from __future__ import annotations

import datetime as dt

import pytest
from allauth.usersessions.models import UserSession
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def _sign_in(client, user):
    response = client.post(reverse("account_login"), {"login": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return Session.objects.get(session_key=client.session.session_key)


def _age(session_row, *, minutes_idle: int):
    """Make the session look as if its last renewal was so long ago."""
    data = session_row.get_decoded()
    data["_mokudash_renewed"] = int(timezone.now().timestamp()) - minutes_idle * 60
    session_row.session_data = Session.objects.encode(data)
    session_row.save()


def test_a_session_idle_for_longer_than_the_limit_is_refused(client, marketer, settings):
    row = _sign_in(client, marketer)
    assert row.expire_date <= timezone.now() + dt.timedelta(minutes=settings.SESSION_IDLE_MINUTES)
    Session.objects.filter(pk=row.pk).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get(reverse("rewards:batch_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


def test_a_request_of_the_person_renews_the_session_but_a_poll_does_not(client, marketer):
    row = _sign_in(client, marketer)
    _age(row, minutes_idle=5)
    Session.objects.filter(pk=row.pk).update(expire_date=timezone.now() + dt.timedelta(minutes=1))

    client.get(reverse("rewards:sync_status"), headers={"HX-Request": "true"})
    polled = Session.objects.get(pk=row.pk).expire_date
    assert polled < timezone.now() + dt.timedelta(minutes=2)  # the poll renewed nothing

    client.get(reverse("rewards:batch_list"))
    renewed = Session.objects.get(pk=row.pk).expire_date
    assert renewed > timezone.now() + dt.timedelta(minutes=60)


def test_each_person_sees_and_ends_their_own_sessions(client, marketer, manager):
    other_device = type(client)()
    _sign_in(other_device, marketer)
    _sign_in(client, marketer)
    type(client)().post(reverse("account_login"), {"login": manager.username, "password": PASSWORD})

    page = client.get(reverse("usersessions_list"))
    assert page.status_code == 200
    assert UserSession.objects.filter(user=marketer).count() == 2
    ended = client.post(reverse("usersessions_list"), {"action": "end"})
    assert ended.status_code == 302
    # The other device is signed out; this one and the manager's are not.
    assert other_device.get(reverse("rewards:batch_list")).status_code == 302
    assert client.get(reverse("rewards:batch_list")).status_code == 200
    assert UserSession.objects.filter(user=manager).count() == 1
