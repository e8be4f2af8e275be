from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    """What an API key may do, on top of what its person may: the one list of scopes."""

    SEND = "send", "Send: create, cancel, retry, approve and decline batches"
    READ = "read", "Read: campaigns, batches, their rows and the rewards"
    REPORTS = "reports", "Reports: the monthly report and the exports"


class ApiKey(models.Model):
    """A person's key for the API. The key itself is shown once, when it is made; only its
    SHA-256 is kept (a key is 32 random bytes, so a slow hash adds nothing), with its first
    characters (`prefix`) to tell keys apart on the page. A key acts as its person, with no
    more than their role and campaigns, and only in its scopes; it dies when revoked, when it
    expires and while its person is deactivated."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def alive(self, now=None) -> bool:
        return self.state(now) == "alive"

    def state(self, now=None) -> str:
        """The state the pages show: alive, revoked or expired (revoked wins: it was an act)."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "alive"


class IdempotencyRecord(models.Model):
    """The first answer to a POST with an Idempotency-Key, replayed for the same key and body.

    Keys belong to a person (Stripe's are an account's): two of their keys, or two of their
    systems, that use one Idempotency-Key mean one request. The row is written, unique, before
    the work is done, so that of two requests at the same moment only one does it; the other
    waits for the first answer (api/idempotency.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # What the key was first used for: a different method, path or body is refused (422).
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    body_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Empty until the first answer is known.
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.BinaryField(default=b"")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="api_idempotency_one_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"
