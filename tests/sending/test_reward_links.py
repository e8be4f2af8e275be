"""A create answer whose reward URL is not a web address: the reward is recorded as sent, and
the URL is never stored, so no page links to it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from rewards.models import Send
from rewards.services.chunk import batch_send_chunk
from rewards.services.sending import RecipientRow, batch_create
from tests.client import bodies
from tests.client.server import body, local_server

EVIL = "javascript:alert(document.domain)//"


@pytest.mark.django_db
def test_a_javascript_url_in_a_create_answer_is_not_stored_as_the_rewards_url(
    campaign, settings, isolated_broker, client, admin_user
):
    answer = bodies.REWARD_URL.replace("http://www.mokugift.com/r/r-2", EVIL)
    with local_server() as server:
        settings.MOKUGIFT_SANDBOX_URL = server.url
        server.then(body(answer))
        batch = batch_create(
            campaign=campaign,
            mode="link",
            rows=[RecipientRow(row_number=1, recipient="sally@chan.com")],
            source="single",
        )
        batch_send_chunk(batch_id=batch.pk)
        assert [r.path for r in server.received] == ["/api/reward_url/spring-1"]

    send = Send.objects.get(batch=batch)
    assert (send.state, send.remote_id) == (Send.State.SENT, "r-2")
    assert send.url == ""
    client.force_login(admin_user)
    page = client.get(reverse("rewards:batch_detail", args=[batch.pk]))
    assert page.status_code == 200
    assert b"javascript:" not in page.content
