"""The reads behind the webhooks' pages."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from webhooks.models import Delivery, DeliveryAttempt, Endpoint


def endpoints_for_list() -> QuerySet[Endpoint]:
    """Endpoints with their last delivery's state and time, in one query."""
    last = Delivery.objects.filter(endpoint=OuterRef("pk")).order_by("-created_at", "-pk")
    return (
        Endpoint.objects.defer("secret", "previous_secret")
        .annotate(
            last_delivery_state=Subquery(last.values("state")[:1]),
            last_delivery_at=Subquery(last.values("created_at")[:1]),
        )
        .order_by("pk")
    )


def endpoint_log(*, endpoint: Endpoint) -> QuerySet[DeliveryAttempt]:
    """Every attempt at the endpoint, newest first, with its delivery (one query a page)."""
    return DeliveryAttempt.objects.filter(delivery__endpoint=endpoint).select_related("delivery")


def endpoint_deliveries(*, endpoint: Endpoint) -> QuerySet[Delivery]:
    return Delivery.objects.filter(endpoint=endpoint).defer("payload").prefetch_related("log")
