"""Reads of the campaigns' backoff (rewards/services/backoff.py) for the sending engine and
the batch page."""

from __future__ import annotations

import math
from datetime import datetime

from django.template.defaultfilters import pluralize
from django.utils import timezone

from rewards.models import CampaignBackoff


def backoff_seconds_left(*, backoff: CampaignBackoff, now: datetime | None = None) -> float:
    """Seconds the campaign of `backoff` must still wait before a call (0: none)."""
    return _wait(backoff.until, now or timezone.now()) if backoff.failures else 0.0


def campaign_backoff_wait(*, campaign_pk: int, now: datetime | None = None) -> float:
    """Seconds the campaign's calls must still wait (0: none)."""
    until = (
        CampaignBackoff.objects.filter(campaign_id=campaign_pk, failures__gt=0)
        .values_list("until", flat=True)
        .first()
    )
    return _wait(until, now or timezone.now())


def campaigns_backed_off(*, now: datetime | None = None) -> dict[int, float]:
    """Every campaign with failures in a row: the seconds its calls must still wait (0: its
    wait is over, and its next call is a try whether the endpoint answers again)."""
    now = now or timezone.now()
    return {
        campaign_pk: _wait(until, now)
        for campaign_pk, until in CampaignBackoff.objects.filter(failures__gt=0).values_list(
            "campaign_id", "until"
        )
    }


def campaign_backoff_note(*, campaign_pk: int, now: datetime | None = None) -> str:
    """Why the campaign's batches wait, for the batch page; "" when they do not."""
    backoff = CampaignBackoff.objects.filter(campaign_id=campaign_pk, failures__gt=0).first()
    if backoff is None:
        return ""
    wait = _wait(backoff.until, now or timezone.now())
    when = f"tries again in about {math.ceil(wait)} s" if wait else "is trying again now"
    n = backoff.failures
    return (
        f"Waiting: Mokugift's endpoint for this campaign misbehaves ({n} failed"
        f" call{pluralize(n)} in a row; the last: {backoff.reason}). Sending {when}."
    )


def _wait(until: datetime | None, now: datetime) -> float:
    return max(0.0, (until - now).total_seconds()) if until is not None else 0.0
