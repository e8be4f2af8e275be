"""Changing one's email address: the new address counts only once confirmed from its own
mailbox (a real SMTP server), so a stolen session cannot send password resets elsewhere."""

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse

from audit.models import AuditEvent, Kind
from tests.conftest import PASSWORD
from tests.mail import links

pytestmark = pytest.mark.django_db


def test_a_new_address_counts_only_once_confirmed_from_its_mailbox(client, marketer, smtp_server):
    marketer.email = "old@example.com"
    marketer.save()
    EmailAddress.objects.create(user=marketer, email="old@example.com", verified=True, primary=True)
    client.post(reverse("account_login"), {"login": marketer.username, "password": PASSWORD})

    response = client.post(reverse("account_email"), {"action_add": "", "email": "new@example.com"})
    assert response.status_code == 302
    (mail,) = smtp_server.wait_for(to="new@example.com")
    marketer.refresh_from_db()
    assert marketer.email == "old@example.com"  # not yet

    # A password reset asked for the new address before it is confirmed goes nowhere.
    client.post(reverse("account_reset_password"), {"email": "new@example.com"})
    # (allauth tells an address with no account so, by mail: no reset link in it.)
    for sent in smtp_server.messages[1:]:
        assert not [url for url in links(sent) if "/password/reset/key/" in url]

    (link,) = [url for url in links(mail) if "/confirm-email/" in url]
    client.post(link.removeprefix("http://testserver"))
    marketer.refresh_from_db()
    assert marketer.email == "new@example.com"
    assert AuditEvent.objects.filter(kind=Kind.EMAIL_CHANGED, person=marketer).exists()
