"""Reads of the ledger for the batch pages, the command line and the tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from rewards.models import Batch, Send
from rewards.models.ledger import FINISHED_STATES


def batch_counts(*, batch: Batch | int) -> dict[str, int]:
    """Rows of the batch by state, every state present (0 when none), in one query."""
    batch_id = batch if isinstance(batch, int) else batch.pk
    counts = dict.fromkeys(Send.State.values, 0)
    for state, n in (
        Send.objects.filter(batch_id=batch_id)
        .order_by()
        .values_list("state")
        .annotate(n=Count("pk"))
    ):
        counts[state] = n
    return counts


@dataclass(frozen=True)
class BatchProgress:
    counts: dict[str, int]
    total: int
    finished: int
    # 0.0 to 1.0: finished rows over all rows.
    fraction: float
    started_at: datetime | None
    last_finished_at: datetime | None
    # Rows finished per second so far, and the time left at that rate (None: not known yet).
    rate: float | None
    eta_seconds: float | None

    @property
    def percent(self) -> int:
        return int(self.fraction * 100)


def batch_progress(*, batch: Batch | int, now: datetime | None = None) -> BatchProgress:
    """Counts, done fraction and an estimate of the time left, in one query.

    The estimate is the rate of rows finished since the first claim, applied to the rows
    left; it is None until a row has finished.
    """
    batch_id = batch if isinstance(batch, int) else batch.pk
    now = now or timezone.now()
    aggregates = {state: Count("pk", filter=Q(state=state)) for state in Send.State.values}
    row = Send.objects.filter(batch_id=batch_id).aggregate(
        total=Count("pk"),
        started_at=Min("first_attempt_at"),
        last_finished_at=Max("updated_at", filter=Q(state__in=FINISHED_STATES)),
        **aggregates,
    )
    counts = {state: row[state] for state in Send.State.values}
    total = row["total"]
    finished = sum(counts[s] for s in FINISHED_STATES)
    rate = eta = None
    started = row["started_at"]
    if started is not None and finished:
        elapsed = max((now - started).total_seconds(), 0.001)
        rate = finished / elapsed
        eta = (total - finished) / rate
    return BatchProgress(
        counts=counts,
        total=total,
        finished=finished,
        fraction=finished / total if total else 1.0,
        started_at=started,
        last_finished_at=row["last_finished_at"],
        rate=rate,
        eta_seconds=eta,
    )


def sends_paid_twice(*, batch: Batch | int | None = None) -> QuerySet[Send]:
    """Rows for which the recipient got two rewards, newest first: never hidden, never cleared."""
    rows = Send.objects.filter(paid_twice_at__isnull=False)
    if batch is not None:
        rows = rows.filter(batch_id=batch if isinstance(batch, int) else batch.pk)
    return (
        rows.select_related("batch__campaign", "batch__created_by")
        .defer("batch__campaign__passcode", "batch__campaign__notes")
        .order_by("-paid_twice_at", "-pk")
    )


@dataclass(frozen=True)
class UnknownSummary:
    count: int
    # When the first and the last of them may be proven absent (their attempt plus the horizon).
    first_decisive_at: datetime | None
    last_decisive_at: datetime | None


def batch_unknown_summary(*, batch: Batch | int) -> UnknownSummary:
    """The batch's rows of unknown outcome, and when they are decided at the latest."""
    batch_id = batch if isinstance(batch, int) else batch.pk
    row = Send.objects.filter(batch_id=batch_id, state=Send.State.UNKNOWN).aggregate(
        count=Count("pk"), first=Min("attempt_started_at"), last=Max("attempt_started_at")
    )
    horizon = timedelta(seconds=settings.MOKUGIFT_COMMIT_HORIZON)
    return UnknownSummary(
        count=row["count"],
        first_decisive_at=row["first"] + horizon if row["first"] else None,
        last_decisive_at=row["last"] + horizon if row["last"] else None,
    )


# --- Why rows failed ------------------------------------------------------------------------

NO_REASON = "No reason recorded"


@dataclass(frozen=True)
class FailureReason:
    reason: str
    count: int


def batches_failure_reasons(*, batch_ids: list[int]) -> dict[int, list[FailureReason]]:
    """The failed rows of each batch grouped by their error text, most frequent first (then
    by text), in one query: {batch_id: [FailureReason("No moku-coins left ...", 95), ...]}.
    A batch without failed rows is absent from the dict.
    """
    reasons: dict[int, list[FailureReason]] = {}
    rows = (
        Send.objects.filter(batch_id__in=batch_ids, state=Send.State.FAILED)
        .order_by()
        .values_list("batch_id", "error_message")
        .annotate(n=Count("pk"))
        .order_by("batch_id", "-n", "error_message")
    )
    for batch_id, message, n in rows:
        reason = FailureReason(reason=message.strip() or NO_REASON, count=n)
        reasons.setdefault(batch_id, []).append(reason)
    return reasons


def batch_failure_reasons(*, batch: Batch | int) -> list[FailureReason]:
    """The batch's failed rows grouped by their error text, most frequent first."""
    batch_id = batch if isinstance(batch, int) else batch.pk
    return batches_failure_reasons(batch_ids=[batch_id]).get(batch_id, [])
