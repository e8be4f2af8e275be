"""Mail settings: EMAIL_URL becomes Django 6.1's MAILERS, and a developer's machine keeps every
mail in an outbox page instead of needing a mail server."""

import pytest
from django.core.mail import send_mail
from django.urls import reverse

from accounts.mail import outbox_messages
from mokudash.mailers import mailers_from_url


def test_an_email_url_with_starttls_becomes_an_smtp_mailer():
    assert mailers_from_url("smtp+tls://ann:s3cret@mail.example.com:587") == {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": "mail.example.com",
            "port": 587,
            "username": "ann",
            "password": "s3cret",
            "use_tls": True,
            "timeout": 30,
        },
    }


def test_a_plain_smtp_url_has_no_credentials():
    mailer = mailers_from_url("smtp://localhost:25")
    assert mailer["OPTIONS"] == {"host": "localhost", "port": 25, "timeout": 30}


@pytest.mark.django_db
def test_the_outbox_prints_and_keeps_each_mail_for_its_page(settings, tmp_path, client, capsys):
    settings.VAR_DIR = tmp_path
    settings.DEVELOPMENT = True
    settings.MAILERS = {"default": {"BACKEND": "accounts.mail.OutboxBackend"}}
    send_mail("Your invitation", "Follow http://localhost:8000/invitations/abc/", None, ["n@x.io"])

    assert "mail to n@x.io: Your invitation" in capsys.readouterr().out
    (mail,) = outbox_messages()
    assert mail.subject == "Your invitation" and mail.to == "n@x.io"
    page = client.get(reverse("dev_outbox")).content.decode()
    assert '<a href="http://localhost:8000/invitations/abc/"' in page
