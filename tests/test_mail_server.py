"""The tests' SMTP server receives what Django sends over real SMTP."""

from django.core.mail import send_mail

from tests.mail import body_text, links


def test_the_smtp_server_receives_a_message_django_sends(smtp_server):
    send_mail("Hello", "Follow https://example.test/x/1/ now.", "from@example.test", ["a@b.test"])

    (message,) = smtp_server.wait_for(to="a@b.test")
    assert message["Subject"] == "Hello"
    assert "Follow" in body_text(message)
    assert links(message) == ["https://example.test/x/1/"]
