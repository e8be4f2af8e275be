"""Notices: what a person is told, by email and in the pages."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Kind(models.TextChoices):
    APPROVAL_NEEDED = "approval_needed", "A batch awaits your approval"
    BATCH_APPROVED = "batch_approved", "Your batch was approved"
    BATCH_DECLINED = "batch_declined", "Your batch was declined"
    BATCH_FINISHED = "batch_finished", "Your batch finished"
    BATCH_PAUSED = "batch_paused", "Your batch paused"
    BUDGET_80 = "budget_80", "A campaign used 80 % of its monthly budget"
    BUDGET_100 = "budget_100", "A campaign used all of its monthly budget"
    PAID_TWICE = "paid_twice", "A recipient was paid twice"


class Notice(models.Model):
    """One thing told to one person: shown on /notices/ (and counted in the bell until they
    open it) and mailed to them. It holds its words, written when it was made, so that it
    reads the same after the batch or campaign it speaks of has moved on."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notices"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    # A path within the dashboard (the batch's or the campaign's page); the mail makes it
    # absolute with SITE_URL.
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The bell's count on every page: a person's unread notices.
            models.Index(
                fields=["user"], condition=models.Q(read_at=None), name="notice_unread_idx"
            ),
            models.Index(fields=["user", "-created_at"], name="notice_user_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.user}"
