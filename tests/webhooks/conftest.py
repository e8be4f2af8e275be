from __future__ import annotations

import pytest

from tests.webhooks.receiver import receiver_running


@pytest.fixture(autouse=True)
def _receivers_on_this_machine(settings):
    # The receivers of these tests run on 127.0.0.1; the tests of the guard turn this off.
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.0
    settings.WEBHOOK_TIMEOUT = (2.0, 1.0)


@pytest.fixture
def receiver():
    with receiver_running() as running:
        yield running
