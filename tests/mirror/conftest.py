import pytest

from tests.worker import broker_down  # noqa: F401


@pytest.fixture
def campaign(db):
    """A campaign for tests that never call the API (the mirror filled directly)."""
    from campaigns.models import Campaign

    return Campaign.objects.create(name="Spring", campaign_id="spring", environment="sandbox")


@pytest.fixture
def other_campaign(db):
    from campaigns.models import Campaign

    return Campaign.objects.create(name="Autumn", campaign_id="autumn", environment="sandbox")
