"""Notices: what a person is told, by email and in the pages."""

from __future__ import annotations

from django.db import models


class Kind(models.TextChoices):
    APPROVAL_NEEDED = "approval_needed", "A batch awaits your approval"
    BATCH_APPROVED = "batch_approved", "Your batch was approved"
    BATCH_DECLINED = "batch_declined", "Your batch was declined"
    BATCH_FINISHED = "batch_finished", "Your batch finished"
    BATCH_PAUSED = "batch_paused", "Your batch paused"
    BUDGET_80 = "budget_80", "A campaign used 80 % of its monthly budget"
    BUDGET_100 = "budget_100", "A campaign used all of its monthly budget"
    PAID_TWICE = "paid_twice", "A recipient was paid twice"
