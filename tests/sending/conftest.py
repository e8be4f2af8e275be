"""Fixtures of the sending tests: a real Celery worker process, an isolated broker, and the
campaign and marketer of the page tests."""

import pytest

from campaigns.services import campaign_create
from tests.worker import celery_worker, isolated_broker  # noqa: F401

PASSCODE = "sEcr3t-passc0de-never-shown"


@pytest.fixture
def campaign(db):
    return campaign_create(
        actor=None, name="Spring", campaign_id="spring-1", environment="sandbox", passcode=PASSCODE
    )


@pytest.fixture
def as_marketer(client, marketer):
    client.force_login(marketer)
    return client
