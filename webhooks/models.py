"""Webhook endpoints (where admins want to be told) and their deliveries (what we told them)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from campaigns.fields import EncryptedTextField


class Event(models.TextChoices):
    """The one home of the event names a webhook can carry."""

    BATCH_AWAITING_APPROVAL = "batch.awaiting_approval", "A batch awaits approval"
    BATCH_APPROVED = "batch.approved", "A batch was approved"
    BATCH_DECLINED = "batch.declined", "A batch was declined"
    BATCH_STARTED = "batch.started", "A batch started sending"
    BATCH_FINISHED = "batch.finished", "A batch finished"
    BATCH_PAUSED = "batch.paused", "A batch paused"
    SEND_PAID_TWICE = "send.paid_twice", "A recipient was paid twice"
    SYNC_FAILED = "sync.failed", "A sync of the mirror failed"


class Endpoint(models.Model):
    url = models.URLField("URL", max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    # `whsec_` + base64, encrypted like a campaign's passcode. Shown once (creation, rotation).
    secret = EncryptedTextField()
    # After a rotation the old secret signs too until `previous_secret_until`, so a receiver
    # can change its key without losing a message.
    previous_secret = EncryptedTextField(blank=True, default="")
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.url


class Delivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40, choices=Event)
    # The webhook-id header: the same for every attempt, so a receiver can drop duplicates.
    message_id = models.CharField(max_length=40)
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=State, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a worker claimed the attempt under way (state sending): the sweep frees a stale one.
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} {self.message_id}"


class DeliveryAttempt(models.Model):
    """One POST of a delivery: the endpoint page's log."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
