"""Webhook endpoints (admins' writes) and deliveries (emit, send, retry, send again)."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import random
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit.models import Kind
from audit.services import audit_record
from campaigns.crypto import DecryptionError
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event
from webhooks.sender import webhook_post

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from rewards.models import Batch, Send, SyncRun

logger = logging.getLogger(__name__)

# Addresses no webhook may reach, beyond what `ipaddress` already calls private, loopback,
# link-local, multicast, reserved or unspecified: carrier-grade NAT and the clouds' metadata.
_REFUSED_NETWORKS = (
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


class WebhookAddressRefused(ValidationError):
    """The URL is not http(s), does not resolve, or resolves to an address we never reach."""


def _address_refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or any(ip in network for network in _REFUSED_NETWORKS)
    )


def webhook_url_check(*, url: str) -> str:
    """The address to connect to for `url`, or WebhookAddressRefused. Every address the name
    resolves to must be allowed (an attacker's name may give a public one and a private one)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookAddressRefused("Only http and https URLs with a host name.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as error:
        raise WebhookAddressRefused(f"{parts.hostname} does not resolve: {error}") from None
    addresses = [str(info[4][0]) for info in found]
    if not addresses:
        raise WebhookAddressRefused(f"{parts.hostname} does not resolve.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        for address in addresses:
            if _address_refused(address):
                raise WebhookAddressRefused(
                    f"{parts.hostname} resolves to {address}, a loopback, private, link-local "
                    "or metadata address: webhooks never reach into the network behind us."
                )
    return addresses[0]


def _secret_new() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _events_clean(events: list[str]) -> list[str]:
    unknown = set(events) - set(Event.values)
    if unknown:
        raise ValidationError(f"Unknown events: {', '.join(sorted(unknown))}")
    return [event for event in Event.values if event in events]


@dataclass(frozen=True)
class EndpointWithSecret:
    """An endpoint and its new secret, which the page shows once and nothing keeps in clear."""

    endpoint: Endpoint
    secret: str


def endpoint_create(
    *, url: str, description: str, events: list[str], enabled: bool, actor: User | None
) -> EndpointWithSecret:
    webhook_url_check(url=url)
    secret = _secret_new()
    with transaction.atomic():
        endpoint = Endpoint.objects.create(
            url=url,
            description=description,
            events=_events_clean(events),
            enabled=enabled,
            secret=secret,
            created_by=actor,
        )
        audit_record(
            kind=Kind.WEBHOOK_ADDED,
            actor=actor,
            detail={"endpoint": endpoint.pk, "url": url, "events": endpoint.events},
        )
    return EndpointWithSecret(endpoint=endpoint, secret=secret)


def endpoint_update(
    *,
    endpoint: Endpoint,
    url: str,
    description: str,
    events: list[str],
    enabled: bool,
    actor: User | None,
) -> Endpoint:
    webhook_url_check(url=url)
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(
            url=url, description=description, events=_events_clean(events), enabled=enabled
        )
        endpoint.refresh_from_db()
        audit_record(
            kind=Kind.WEBHOOK_CHANGED,
            actor=actor,
            detail={
                "endpoint": endpoint.pk,
                "url": url,
                "events": endpoint.events,
                "enabled": enabled,
            },
        )
    return endpoint


def endpoint_remove(*, endpoint: Endpoint, actor: User | None) -> None:
    with transaction.atomic():
        audit_record(
            kind=Kind.WEBHOOK_REMOVED,
            actor=actor,
            detail={"endpoint": endpoint.pk, "url": endpoint.url},
        )
        endpoint.delete()


def endpoint_secret_rotate(
    *, endpoint: Endpoint, actor: User | None, now: datetime | None = None
) -> EndpointWithSecret:
    """A new secret; the old one still signs for WEBHOOK_SECRET_OVERLAP_HOURS."""
    now = now or timezone.now()
    secret = _secret_new()
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret = locked.secret
        locked.previous_secret_until = now + timedelta(hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS)
        locked.secret = secret
        locked.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
        audit_record(
            kind=Kind.WEBHOOK_SECRET_ROTATED,
            actor=actor,
            detail={
                "endpoint": locked.pk,
                "overlap_until": locked.previous_secret_until.isoformat(),
            },
        )
    return EndpointWithSecret(endpoint=locked, secret=secret)


# --- The data of each event -----------------------------------------------------------------


def webhook_batch_data(*, batch: Batch) -> dict[str, Any]:
    """A batch as webhooks (and the API) tell it."""
    from campaigns.models import Campaign
    from rewards.selectors.sending import batch_counts

    # Never the campaign's row as a whole: its passcode would be read (and decrypted) for
    # nothing, and a passcode no key can read must not stop the telling of a pause.
    campaign_id = (
        Campaign.objects.filter(pk=batch.campaign_id).values_list("campaign_id", flat=True).first()
    )
    return {
        "id": batch.pk,
        "state": batch.state,
        "campaign": campaign_id,
        "mode": batch.mode,
        "counts": batch_counts(batch=batch),
        "created_at": batch.created_at.isoformat(),
        "send_at": batch.send_at.isoformat() if batch.send_at else None,
    }


def webhook_emit_batch(*, event: Event, batch_id: int) -> None:
    """One line for the batch services to call at each event."""
    from rewards.models import Batch

    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is not None:
        webhook_emit(event=event, data={"batch": webhook_batch_data(batch=batch)})


def webhook_emit_paid_twice(*, send: Send) -> None:
    from rewards.models import Batch

    batch = Batch.objects.get(pk=send.batch_id)
    webhook_emit(
        event=Event.SEND_PAID_TWICE,
        data={
            "batch": webhook_batch_data(batch=batch),
            "send": {"id": send.pk, "recipient": send.recipient},
        },
    )


def webhook_emit_sync_failed(*, run: SyncRun) -> None:
    run.refresh_from_db()
    month = f"{run.year:04d}-{run.month:02d}" if run.year and run.month else "all"
    webhook_emit(
        event=Event.SYNC_FAILED,
        data={"sync": {"id": run.pk, "month": month, "error": run.error}},
    )


# --- Deliveries -----------------------------------------------------------------------------


def webhook_emit(*, event: Event | str, data: dict[str, Any]) -> list[int]:
    """One delivery per enabled endpoint subscribed to `event`, each queued after the commit.
    Call it inside the transaction of the act: the two commit (or roll back) together."""
    from rewards.services.enqueue import task_publish
    from webhooks.tasks import webhook_deliver

    event = Event(event)
    now = timezone.now()
    payload = {"type": event.value, "timestamp": now.isoformat(), "data": data}
    made = []
    # Few endpoints: filtering the list in Python works on SQLite and PostgreSQL alike.
    for endpoint in Endpoint.objects.filter(enabled=True).only("pk", "events"):
        if event.value not in endpoint.events:
            continue
        delivery = Delivery.objects.create(
            endpoint_id=endpoint.pk,
            event=event.value,
            message_id=f"msg_{secrets.token_urlsafe(18)}",
            payload=payload,
            next_attempt_at=now,
        )
        made.append(delivery.pk)
        transaction.on_commit(partial(task_publish, webhook_deliver, args=[delivery.pk]))
    return made


def _signatures(*, endpoint: Endpoint, message_id: str, at: datetime, body: bytes) -> str:
    signatures = [Webhook(endpoint.secret).sign(message_id, at, body)]
    # The overlap first: a previous secret past it is not read (nor decrypted) at all.
    if (
        endpoint.previous_secret_until
        and at < endpoint.previous_secret_until
        and endpoint.previous_secret
    ):
        signatures.append(Webhook(endpoint.previous_secret).sign(message_id, at, body))
    # The specification allows several signatures, space-separated: during a rotation's
    # overlap a receiver with either secret accepts the message.
    return " ".join(signatures)


def retry_delay(*, attempts: int) -> float:
    """Seconds before the next try: the base doubling at each attempt, with up to 20% jitter
    so that many deliveries that failed together do not come back together."""
    delay = settings.WEBHOOK_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0))
    return min(delay, 6 * 3600.0) * random.uniform(1.0, 1.2)


def delivery_attempt(*, delivery_pk: int, now: datetime | None = None) -> str | None:
    """Make one attempt of a delivery that is due. Returns its state after, or None when there
    was nothing to do (gone, done, not due, or claimed by another worker)."""
    now = now or timezone.now()
    # The claim: a task delivered twice by the broker (late acknowledgement) or picked up by
    # the sweep as well finds the row already sending and does nothing.
    claimed = Delivery.objects.filter(
        pk=delivery_pk, state=Delivery.State.PENDING, next_attempt_at__lte=now
    ).update(
        state=Delivery.State.SENDING,
        attempts=F("attempts") + 1,
        next_attempt_at=None,
        claimed_at=now,
    )
    if not claimed:
        return None
    # The secrets are read (decrypted) when signing, where an unreadable one is an attempt's
    # error; read with the row, it would leave the delivery claimed until the sweep.
    delivery = (
        Delivery.objects.select_related("endpoint")
        .defer("endpoint__secret", "endpoint__previous_secret")
        .get(pk=delivery_pk)
    )
    endpoint = delivery.endpoint
    first = delivery.first_attempt_at or now
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    status: int | None = None
    duration_ms = 0
    error = ""
    try:
        # Checked again at each delivery: the name may point elsewhere since the save.
        address = webhook_url_check(url=endpoint.url)
        signature = _signatures(
            endpoint=endpoint, message_id=delivery.message_id, at=now, body=body
        )
    except WebhookAddressRefused as refused:
        error = " ".join(refused.messages)
    except DecryptionError as unreadable:
        # The secret was written under a key no longer configured: nothing goes out unsigned;
        # the attempt is logged and retried, for an operator to put the key back.
        error = f"The endpoint's secret could not be read: {unreadable}"
    else:
        headers = {
            "content-type": "application/json",
            "user-agent": "mokudash-webhooks",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        result = webhook_post(
            url=endpoint.url,
            address=address,
            body=body,
            headers=headers,
            timeout=(float(settings.WEBHOOK_TIMEOUT[0]), float(settings.WEBHOOK_TIMEOUT[1])),
        )
        status, duration_ms, error = result.status_code, result.duration_ms, result.error
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}" + (
                " (redirects are not followed)" if 300 <= status < 400 else ""
            )
    delivered = status is not None and 200 <= status < 300
    if delivered:
        state, next_at = Delivery.State.DELIVERED, None
    else:
        next_at = timezone.now() + timedelta(seconds=retry_delay(attempts=delivery.attempts))
        if next_at > first + timedelta(seconds=settings.WEBHOOK_RETRY_FOR_SECONDS):
            state, next_at = Delivery.State.FAILED, None
        else:
            state = Delivery.State.PENDING
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            at=now,
            status_code=status,
            duration_ms=duration_ms,
            error=error,
        )
        Delivery.objects.filter(pk=delivery_pk, state=Delivery.State.SENDING).update(
            state=state,
            next_attempt_at=next_at,
            first_attempt_at=first,
            last_status_code=status,
            last_duration_ms=duration_ms,
            last_error=error,
        )
        if next_at is not None:
            from rewards.services.enqueue import task_publish
            from webhooks.tasks import webhook_deliver

            countdown = max((next_at - timezone.now()).total_seconds(), 0.0)
            transaction.on_commit(
                lambda: task_publish(webhook_deliver, args=[delivery_pk], countdown=countdown)
            )
    logger.info("webhook %s attempt %d: %s %s", delivery_pk, delivery.attempts, state, error)
    return state


def delivery_send_again(*, delivery: Delivery, actor: User | None) -> None:
    """A new attempt now, with the same message id (receivers drop what they already have).
    A delivery that gave up starts a new day of retries."""
    from rewards.services.enqueue import task_publish
    from webhooks.tasks import webhook_deliver

    with transaction.atomic():
        moved = Delivery.objects.filter(
            pk=delivery.pk,
            state__in=[Delivery.State.DELIVERED, Delivery.State.FAILED, Delivery.State.PENDING],
        ).update(
            state=Delivery.State.PENDING, next_attempt_at=timezone.now(), first_attempt_at=None
        )
        if moved:
            audit_record(
                kind=Kind.WEBHOOK_SENT_AGAIN,
                actor=actor,
                detail={"endpoint": delivery.endpoint_id, "delivery": delivery.pk},
            )
            pk = delivery.pk
            transaction.on_commit(lambda: task_publish(webhook_deliver, args=[pk]))


# A delivery left sending this long lost its worker mid-attempt (the read timeout bounds one).
STALE_SENDING = timedelta(minutes=10)


def deliveries_sweep(*, now: datetime | None = None) -> int:
    """Queue the due deliveries whose task was lost (a broker down, a worker killed)."""
    from rewards.services.enqueue import task_publish
    from webhooks.tasks import webhook_deliver

    now = now or timezone.now()
    Delivery.objects.filter(
        state=Delivery.State.SENDING, claimed_at__lt=now - STALE_SENDING
    ).update(state=Delivery.State.PENDING, next_attempt_at=now)
    due = list(
        Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now).values_list(
            "pk", flat=True
        )[:1000]
    )
    for pk in due:
        task_publish(webhook_deliver, args=[pk])
    return len(due)


def endpoints_rotate_encryption_keys() -> int:
    """Re-encrypt every endpoint's secret (and the previous one, during its overlap) under the
    newest key of FIELD_ENCRYPTION_KEYS: reading decrypts with whichever key fits, saving
    encrypts with the newest. Part of `rotate_encryption_keys`. Returns how many were done."""
    done = 0
    with transaction.atomic():
        endpoints = list(Endpoint.objects.select_for_update().order_by("pk"))
        Endpoint.objects.bulk_update(endpoints, ["secret", "previous_secret"])
        done = len(endpoints)
    return done
