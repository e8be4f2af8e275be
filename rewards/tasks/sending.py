"""The sending tasks: doors into rewards/services/chunk.py, reconcile.py, sweep.py and backoff.py.

Each takes primary keys only (never a passcode or a model instance), re-reads its rows and
returns quietly when they are gone. None trusts the broker to deliver it exactly once: the
ledger's conditional updates make a duplicate harmless, and the sweep makes a lost one so.
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from rewards.models import Send
from rewards.mokugift import session_get
from rewards.selectors.backoff import campaign_backoff_wait
from rewards.services import backoff, chunk, controls, reconcile, sweep


@worker_process_init.connect
def _warm_up(**_kwargs) -> None:
    """Each pool process opens its database connection and HTTP session when it starts, so
    that the first chunk of a batch does not pay for them (a one-reward send waits on it)."""
    connection.close()  # never share the parent's connection across fork
    Send.objects.exists()
    session_get()


@shared_task(name="rewards.batch_send_chunk")
def batch_send_chunk(batch_id: int) -> None:
    """One link of a batch's chain: a chunk, and the chunks after it for about a second
    (chunk.CHAIN_SECONDS), then a successor task for the rest."""
    chunk.batch_send_chain(batch_id=batch_id)


# Passes a reconcile task makes on its own for rows still pending; then the sweep takes over.
RECONCILE_FOLLOW_UPS = 20


@shared_task(name="rewards.campaign_reconcile")
def campaign_reconcile(campaign_pk: int, follow_up: int = 0) -> None:
    wait = campaign_backoff_wait(campaign_pk=campaign_pk)
    if wait:
        # The campaign's endpoint misbehaves: ask it again when its backoff is over.
        campaign_reconcile.apply_async(args=(campaign_pk, follow_up), countdown=wait)
        return
    # One pass of a campaign at a time: a stalling endpoint holds one worker, not one per
    # pass the sweep and the chunks queue meanwhile. The lease outlasts any pass of one or
    # two months (each query has the call deadline); a longer one may overlap, harmlessly,
    # and the lease of a worker killed mid-pass lapses after that long.
    lease = f"rewards:reconciling:{campaign_pk}"
    if not cache.add(lease, 1, timeout=2 * settings.MOKUGIFT_CALL_DEADLINE + 60):
        return  # the pass under way looks again while rows are pending, and so does the sweep
    try:
        report = reconcile.campaign_reconcile(campaign_pk=campaign_pk)
    finally:
        cache.delete(lease)
    if report.pending and follow_up < RECONCILE_FOLLOW_UPS:
        # Rows too fresh to call absent, or a recipient still in flight: look again soon.
        campaign_reconcile.apply_async(
            args=(campaign_pk, follow_up + 1),
            countdown=max(1.0, settings.MOKUGIFT_RECONCILE_SETTLE),
        )


@shared_task(name="rewards.campaign_sending_resume")
def campaign_sending_resume(campaign_pk: int) -> None:
    backoff.campaign_sending_resume(campaign_pk=campaign_pk)


@shared_task(name="rewards.sends_sweep")
def sends_sweep() -> None:
    sweep.sends_sweep()


@shared_task(name="rewards.batch_start_due")
def batch_start_due(batch_id: int) -> None:
    """A scheduled batch's time has come (or was moved: then it is not due, and waits)."""
    controls.batches_start_due(batch_id=batch_id)
