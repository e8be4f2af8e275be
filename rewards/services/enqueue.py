"""Putting work on the queues: after the transaction commits, and never trusting the broker.

Tasks take primary keys only. What is enqueued is already a row in the database, so a broker
that is down loses nothing: the sweep finds the rows, and the next sync comes on its schedule.
The tasks are imported when needed: their modules import the services that call these.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger(__name__)


def task_publish(
    task: Task[..., None], *, args: list[int | str], countdown: float | None = None
) -> None:
    """Publish a task (called after commit). A broker that is down does not undo what was
    committed: ledger rows wait for the sweep, a sync for the next scheduled one."""
    try:
        # No countdown is 0: Celery reads None and 0 alike (no ETA).
        task.apply_async(args=tuple(args), countdown=countdown or 0)
    except KombuOperationalError as error:
        logger.warning("could not enqueue %s%s (the broker is down): %s", task.name, args, error)


def batch_enqueue(*, batch_id: int, chains: int = 1, countdown: float | None = None) -> None:
    """Start `chains` chunk tasks for a batch once the current transaction commits."""
    from rewards.tasks.sending import batch_send_chunk

    for _ in range(max(0, chains)):
        transaction.on_commit(
            partial(task_publish, batch_send_chunk, args=[batch_id], countdown=countdown)
        )


def batch_start_enqueue(*, batch_id: int, at: datetime) -> None:
    """Start a scheduled batch at its time, once the current transaction commits. The sweep
    starts it as well (within MOKUGIFT_SWEEP_INTERVAL) if this task is lost; a task for a time
    since moved finds the batch not due and does nothing."""
    from rewards.tasks.sending import batch_start_due

    wait = (at - timezone.now()).total_seconds()
    transaction.on_commit(
        partial(task_publish, batch_start_due, args=[batch_id], countdown=max(0.0, wait) + 0.05)
    )


def reconcile_enqueue(
    *, campaign_pk: int, countdown: float | None = None, follow_ups: bool = True
) -> None:
    """Reconcile the campaign's unknown rows soon; chunks going unknown together share one
    pass (a pass sees every unknown row of the campaign, and re-runs while some are fresh).
    `follow_ups` False: one pass only (the sweep's, which comes again on its own)."""
    from rewards.tasks.sending import RECONCILE_FOLLOW_UPS, campaign_reconcile

    if not cache.add(f"rewards:reconcile-scheduled:{campaign_pk}", 1, timeout=countdown or 1):
        return
    args: list[int | str] = [campaign_pk] if follow_ups else [campaign_pk, RECONCILE_FOLLOW_UPS]
    transaction.on_commit(partial(task_publish, campaign_reconcile, args=args, countdown=countdown))
