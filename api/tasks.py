from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from api.models import IdempotencyRecord


@shared_task(name="api.idempotency_purge")
def idempotency_purge() -> int:
    """Forget Idempotency-Keys past their window (API_IDEMPOTENCY_HOURS): the rows would
    otherwise grow with every POST."""
    before = timezone.now() - dt.timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=before).delete()
    return deleted
