"""No webhook reaches into the network behind the server: refused at save and at delivery."""

from __future__ import annotations

import pytest

from webhooks.models import Delivery, Event
from webhooks.services import (
    WebhookAddressRefused,
    delivery_attempt,
    endpoint_create,
    webhook_emit,
    webhook_url_check,
)

pytestmark = pytest.mark.django_db

REFUSED = [
    "http://127.0.0.1/hook",
    "http://localhost:8000/hook",
    "http://10.1.2.3/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "ftp://93.184.216.34/hook",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", REFUSED)
def test_an_endpoint_on_a_private_address_is_refused_at_save(settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False

    with pytest.raises(WebhookAddressRefused):
        endpoint_create(
            url=url, description="", events=["batch.finished"], enabled=True, actor=None
        )


def test_a_public_address_is_accepted_and_is_the_one_connected_to(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False

    assert webhook_url_check(url="https://93.184.216.34/hook") == "93.184.216.34"


def test_the_setting_lets_a_receiver_on_this_machine_through(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True

    assert webhook_url_check(url="http://127.0.0.1:9/hook") == "127.0.0.1"


def test_an_endpoint_that_became_private_is_refused_at_delivery(settings, receiver):
    endpoint_create(
        url=receiver.url, description="", events=["batch.finished"], enabled=True, actor=None
    )
    (pk,) = webhook_emit(event=Event.BATCH_FINISHED, data={})
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False

    assert delivery_attempt(delivery_pk=pk) == Delivery.State.PENDING

    assert receiver.received == []
    assert "127.0.0.1" in Delivery.objects.get(pk=pk).last_error
