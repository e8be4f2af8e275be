"""The sync tasks: doors into rewards/services/sync.py.

Each takes IDs only, re-reads the campaign and returns quietly when it is gone or disabled. A
duplicate delivery is harmless: a second run of a period that is running records `skipped`, and
one that comes later finds nothing to change.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from campaigns.models import Campaign
from rewards.services import sync


def _campaign(campaign_pk: int) -> Campaign | None:
    return Campaign.objects.filter(pk=campaign_pk, enabled=True).defer("passcode").first()


@shared_task(name="rewards.sync_campaign_month")
def sync_campaign_month(campaign_pk: int, year: int, month: int) -> None:
    campaign = _campaign(campaign_pk)
    if campaign is not None:
        sync.rewards_sync_month(campaign=campaign, year=year, month=month)


@shared_task(name="rewards.sync_campaign_all")
def sync_campaign_all(campaign_pk: int) -> None:
    campaign = _campaign(campaign_pk)
    if campaign is not None:
        sync.rewards_sync_all(campaign=campaign)


def recent_months(*, now: dt.datetime | None = None) -> list[tuple[int, int]]:
    """The current and the previous month, in UTC as the API counts months."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    previous = (now.replace(day=1) - dt.timedelta(days=1)).date()
    return [(now.year, now.month), (previous.year, previous.month)]


@shared_task(name="rewards.sync_recent")
def sync_recent() -> None:
    """Beat, every few minutes: one task per enabled campaign and recent month."""
    for pk in Campaign.objects.filter(enabled=True).values_list("pk", flat=True):
        for year, month in recent_months():
            sync_campaign_month.delay(pk, year, month)


@shared_task(name="rewards.sync_everything")
def sync_everything() -> None:
    """Beat, nightly: `all_rewards` of every enabled campaign, one task each."""
    for pk in Campaign.objects.filter(enabled=True).values_list("pk", flat=True):
        sync_campaign_all.delay(pk)
