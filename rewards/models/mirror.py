"""The mirror: rewards as Mokugift reports them, from `rewards_in_month` and `all_rewards`."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Coalesce


class MirroredReward(models.Model):
    # No index of its own: the unique (campaign, remote_id) and (campaign, date, id) both lead
    # with it, and a third would only cost a write per reward synced.
    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    remote_id = models.CharField("Mokugift reward ID", max_length=100)
    date = models.DateTimeField()
    recipient_email = models.CharField(max_length=254, blank=True)
    recipient_id = models.CharField(max_length=254, blank=True)
    tree_count = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    # Set when a sync of a period that should hold this reward no longer lists it. We flag
    # rather than delete: it was real once, and someone will want to know why it went.
    missing_since = models.DateTimeField(null=True, blank=True)
    # Our ledger row, when we sent it: it brings the name, the URL, the batch and the sender.
    send = models.OneToOneField(
        "rewards.Send", null=True, blank=True, on_delete=models.SET_NULL, related_name="mirrored"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "remote_id"], name="mirrored_reward_unique_per_campaign"
            )
        ]
        indexes = [
            # Keyset pagination walks (date, id) newest first.
            models.Index(fields=["-date", "-id"], name="mirror_date_id"),
            models.Index(fields=["campaign", "-date", "-id"], name="mirror_campaign_date_id"),
        ]

    def __str__(self) -> str:
        return f"Reward {self.remote_id} ({self.campaign_id})"


class MonthlySummary(models.Model):
    """A month's `summary` as the API reported it: rewards and trees."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField()
    month = models.PositiveSmallIntegerField()
    reward_count = models.PositiveIntegerField()
    tree_count = models.PositiveIntegerField()
    synced_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "year", "month"], name="monthly_summary_unique"
            )
        ]
        verbose_name_plural = "monthly summaries"

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.year}-{self.month:02d}"


class SyncRun(models.Model):
    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped: another sync of this period was running"

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    # Both empty: `all_rewards`, everything.
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    month = models.PositiveSmallIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome, default=Outcome.RUNNING)
    rewards_read = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    flagged_missing = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["campaign", "year", "month", "-started_at"])]
        constraints = [
            # One running sync per campaign and period: the insert of a second "running" row
            # fails, and that run is recorded as skipped. Coalesce because NULLs (the "all"
            # period) never collide in a unique index.
            models.UniqueConstraint(
                "campaign",
                Coalesce("year", 0),
                Coalesce("month", 0),
                condition=models.Q(outcome="running"),
                name="sync_run_one_running_per_period",
            )
        ]

    def __str__(self) -> str:
        period = f"{self.year}-{self.month:02d}" if self.month else "all"
        return f"Sync {self.campaign_id} {period} ({self.outcome})"
