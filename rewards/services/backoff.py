"""Backing off a campaign whose Mokugift endpoint misbehaves.

A call that times out, passes its deadline, gets an answer that is not the API's XML or an
HTTP error (a TransportError of the client) counts as a failure of the campaign's endpoint.
The campaign's calls then wait: MOKUGIFT_CAMPAIGN_BACKOFF seconds after the first failure,
twice that after the second in a row, up to MOKUGIFT_CAMPAIGN_BACKOFF_MAX. Its chunk tasks end
instead of calling (one per batch comes back when the wait is over, see
rewards/services/chunk.py), and its reconciliation waits too, so a stalling endpoint holds at
most a call or two of the workers at a time while the other campaigns keep sending. A create
call that gets an answer from Mokugift (even an API error) ends the backoff.

Calls in flight together fail together: a failure of a call that started before the last
recorded one is the same failure, and does not double the wait again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from rewards.models import Batch, CampaignBackoff, Send
from rewards.selectors.backoff import campaign_backoff_wait

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackoffRecorded:
    until: datetime
    failures: int
    # This failure doubled the wait (the others of its episode only note their reason).
    escalated: bool


def backoff_delay(*, failures: int) -> float:
    """Seconds a campaign waits after `failures` failures in a row."""
    base: float = settings.MOKUGIFT_CAMPAIGN_BACKOFF * (2.0 ** max(0, failures - 1))
    return min(float(settings.MOKUGIFT_CAMPAIGN_BACKOFF_MAX), base)


def campaign_backoff_record(
    *, campaign_pk: int, reason: str, call_started_at: datetime, now: datetime | None = None
) -> BackoffRecorded:
    """A call of the campaign failed as a misbehaving endpoint fails: back the campaign off."""
    now = now or timezone.now()
    with transaction.atomic():
        backoff, _ = CampaignBackoff.objects.select_for_update().get_or_create(
            campaign_id=campaign_pk
        )
        escalated = (
            backoff.failures == 0
            or backoff.last_failure_at is None
            or call_started_at >= backoff.last_failure_at
        )
        if escalated:
            backoff.failures += 1
            backoff.until = now + timedelta(seconds=backoff_delay(failures=backoff.failures))
        backoff.last_failure_at = now
        backoff.reason = reason[:2000]
        backoff.save()
    until = backoff.until
    assert until is not None  # the first failure of an episode sets it
    if escalated:
        logger.warning(
            "campaign %s backed off until %s (%d failures in a row): %s",
            campaign_pk,
            until.isoformat(timespec="seconds"),
            backoff.failures,
            reason,
        )
        from rewards.services.enqueue import task_publish
        from rewards.tasks.sending import campaign_sending_resume as task

        wait = (until - now).total_seconds()
        transaction.on_commit(partial(task_publish, task, args=[campaign_pk], countdown=wait))
    return BackoffRecorded(until=until, failures=backoff.failures, escalated=escalated)


def campaign_sending_resume(*, campaign_pk: int) -> int:
    """The campaign's wait is over: one chain for each of its sending batches with rows
    waiting, the calls that find out whether Mokugift answers again. Returns how many."""
    if campaign_backoff_wait(campaign_pk=campaign_pk):
        return 0  # backed off again meanwhile: the end of that wait comes here again
    from rewards.services.enqueue import batch_enqueue

    batch_ids = list(
        Batch.objects.filter(
            campaign_id=campaign_pk, state=Batch.State.SENDING, sends__state=Send.State.WAITING
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    for batch_id in batch_ids:
        batch_enqueue(batch_id=batch_id, chains=1)
    return len(batch_ids)


def campaign_backoff_clear(*, campaign_pk: int) -> bool:
    """The campaign's endpoint answered: its calls need not wait. True if it was backed off."""
    cleared = CampaignBackoff.objects.filter(campaign_id=campaign_pk, failures__gt=0).update(
        failures=0, until=None, reason=""
    )
    if cleared:
        logger.info("campaign %s: Mokugift answers again, backoff over", campaign_pk)
    return bool(cleared)
