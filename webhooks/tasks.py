"""Celery tasks of the webhooks: primary keys only, one service each."""

from __future__ import annotations

from celery import shared_task

from webhooks import services


@shared_task(name="webhooks.deliver")
def webhook_deliver(delivery_pk: int) -> None:
    services.delivery_attempt(delivery_pk=delivery_pk)


@shared_task(name="webhooks.sweep")
def webhooks_sweep() -> None:
    services.deliveries_sweep()
