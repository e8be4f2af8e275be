"""The periodic sweep: the database, not the broker, says what is left to do.

Celery beat runs it every MOKUGIFT_SWEEP_INTERVAL seconds (the `sends_sweep` task). It makes
no call to Mokugift itself: it moves rows a dead worker left in *sending* to *unknown*, queues
one reconciliation task per campaign that needs one, gives their chains back to batches whose
tasks were lost, and finishes batches with nothing left to move.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from rewards.models import Batch, Send
from rewards.selectors.backoff import campaigns_backed_off
from rewards.services.controls import batches_start_due
from rewards.services.enqueue import reconcile_enqueue
from rewards.services.reconcile import campaigns_to_reconcile
from rewards.services.sending import _move, batch_finish_if_done, batch_wake

logger = logging.getLogger(__name__)


def sends_stuck_to_unknown(*, now: datetime | None = None) -> list[int]:
    """Rows in *sending* longer than any call may take: their worker died mid-call (or was
    killed), and nobody will record their answer. They go to *unknown*, to be reconciled."""
    now = now or timezone.now()
    # A call's deadline bounds it as a whole (the timeouts only bound each wait on the
    # network: a slow answer outlasted them, and the sweep took a live call's rows).
    limit = settings.MOKUGIFT_CALL_DEADLINE + settings.MOKUGIFT_SWEEP_MARGIN
    stuck = Send.objects.filter(
        state=Send.State.SENDING, attempt_started_at__lt=now - timedelta(seconds=limit)
    ).values_list("pk", flat=True)
    return _move(
        ids=list(stuck),
        from_state=Send.State.SENDING,
        to_state=Send.State.UNKNOWN,
        note="stuck in sending: the worker was lost mid-call",
        error_message="Outcome unknown (the worker stopped during the call); "
        "checking with Mokugift.",
    )


@dataclass
class SweepReport:
    stuck: int = 0
    # Campaigns whose reconciliation was queued (one task each).
    reconciled_campaigns: int = 0
    kicked_batches: int = 0
    finished_batches: int = 0
    started_batches: int = 0


def sends_sweep() -> SweepReport:
    """The periodic sweep: the database, not the broker, says what is left to do.

    Rows stuck in *sending* go to *unknown*; unknown rows are reconciled, one task per
    campaign (and rows proven absent are watched for a late reward); a sending batch with due
    waiting rows and nothing in flight gets its chains back (its tasks were lost with a
    worker); a batch with nothing left to move is finished. A backed-off campaign is left
    alone until its wait is over, then gets one chain per batch. The sweep makes no call
    itself: a stalling endpoint holds up none but its own campaign.
    """
    report = SweepReport(stuck=len(sends_stuck_to_unknown()))
    # Scheduled batches whose time has come (their own task was lost, or is late).
    report.started_batches = batches_start_due()
    # A row reconciliation sent back to waiting just as its batch was cancelled.
    orphans = Send.objects.filter(
        state=Send.State.WAITING, batch__state=Batch.State.CANCELLED
    ).values_list("pk", flat=True)
    _move(
        ids=list(orphans),
        from_state=Send.State.WAITING,
        to_state=Send.State.CANCELLED,
        note="batch cancelled",
        next_attempt_at=None,
    )
    campaign_pks = campaigns_to_reconcile()
    now = timezone.now()
    # Seconds each backed-off campaign still waits (0: over, and not yet answered again).
    backed_off = campaigns_backed_off(now=now)
    for campaign_pk in sorted(campaign_pks):
        if backed_off.get(campaign_pk):
            continue  # its pass waits for the end of the backoff (the task is parked until then)
        reconcile_enqueue(campaign_pk=campaign_pk, follow_ups=False)
        report.reconciled_campaigns += 1
    due = Q(sends__next_attempt_at__isnull=True) | Q(sends__next_attempt_at__lte=now)
    stalled = (
        Batch.objects.filter(state=Batch.State.SENDING)
        .filter(Q(sends__state=Send.State.WAITING) & due)
        .exclude(sends__state=Send.State.SENDING)
        .values_list("pk", "campaign_id")
        .distinct()
    )
    for batch_id, campaign_pk in list(stalled):
        wait = backed_off.get(campaign_pk)
        if wait:
            continue  # backed off: the end of its wait brings a chain back
        # A campaign that has not answered again since its backoff gets one chain: a try.
        batch_wake(batch_id=batch_id, chains=1 if wait is not None else None)
        report.kicked_batches += 1
    open_batches = Batch.objects.filter(
        Q(state=Batch.State.SENDING) | Q(state=Batch.State.CANCELLED, finished_at__isnull=True)
    ).values_list("pk", flat=True)
    for batch_id in list(open_batches):
        if batch_finish_if_done(batch_id=batch_id, now=now):
            report.finished_batches += 1
    if report.stuck or report.kicked_batches or report.started_batches:
        logger.info("sweep: %s", report)
    return report
