"""The Refresh button end to end: queued after commit, run by a real worker, seen by polling."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from rewards.models import MirroredReward, SyncRun
from tests.mirror.helpers import sandbox_rewards_add
from tests.worker import celery_worker, wait_for  # noqa: F401  (the fixture, asked for below)

pytestmark = pytest.mark.worker


def test_refresh_queues_a_sync_that_a_worker_runs_and_the_status_shows(
    sandbox, client, manager, request
):
    campaign = sandbox.campaign("w-sync", "refresh-passcode")
    now = timezone.now()
    sandbox_rewards_add("w-sync", now - dt.timedelta(minutes=5), now - dt.timedelta(minutes=1))
    worker = request.getfixturevalue("celery_worker")(beat=False)
    client.force_login(manager)

    response = client.post(
        reverse("rewards:sync_refresh"),
        {"campaign": campaign.pk},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200 and "Refresh queued…" in response.content.decode()
    wait_for(
        lambda: SyncRun.objects.filter(campaign=campaign, outcome="succeeded").exists(),
        timeout=60,
        message=worker.log()[-3000:],
    )
    assert MirroredReward.objects.filter(campaign=campaign).count() == 2
    status = client.get(reverse("rewards:sync_status"), {"campaign": campaign.pk}).content.decode()
    assert 'data-outcome="succeeded"' in status and "hx-trigger" not in status
    assert "(2 new, 0 changed, 0 no longer listed)" in status
    assert "refresh-passcode" not in worker.log()
