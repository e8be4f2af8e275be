"""The sandbox's own tables: its campaigns, and every reward it ever made.

These stand in for Mokugift's side of the wire. Nothing in the dashboard reads them; tests do,
to count what the sandbox really made (e.g. rewards per recipient after a dropped connection).
"""

from __future__ import annotations

from django.db import models


class Fault(models.TextChoices):
    NONE = "none", "No fault"
    HTTP500 = "http500", "HTTP 500, nothing made"
    ERROR110 = "error110", "API error 110, nothing made"
    DROP_BEFORE = "drop-before", "Connection dropped before the reward is made"
    DROP_AFTER = "drop-after", "Connection dropped after the reward is made"
    TIMEOUT_AFTER = "timeout-after", "Answer delayed past the client's timeout, reward made"
    # A slow commit: the request is held, and the reward made only after the delay (the client
    # has given up by then), while the query calls answer at once without it.
    COMMIT_LATE = "commit-late", "Reward made only after the delay, answer too late"


class SandboxCampaign(models.Model):
    campaign_id = models.CharField(max_length=100, unique=True)
    # "<salt>$<sha256 hex>": the sandbox never holds a readable passcode either. Not PBKDF2:
    # it is checked on every call and benchmarks make thousands of them.
    passcode_hash = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    # Last day the campaign may make rewards (UTC); after it, error 104.
    expires = models.DateField(null=True, blank=True)
    # Moku-coins: one per reward. Error 105 when a call needs more than are left.
    coins = models.BigIntegerField(default=1_000_000)
    trees_per_reward = models.PositiveIntegerField(default=1)
    # A delay before every call of this campaign, drawn uniformly from [min, max].
    latency_ms_min = models.PositiveIntegerField(default=0)
    latency_ms_max = models.PositiveIntegerField(default=0)
    # Misbehaviour of the create calls; the query calls stay honest.
    fault = models.CharField(max_length=20, choices=Fault, default=Fault.NONE)
    fault_rate = models.FloatField(default=1.0)
    # How long timeout-after holds the answer back, and commit-late the making of the reward:
    # longer than the client's read timeout.
    fault_delay = models.FloatField(default=70.0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign_id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(coins__gte=0), name="sandbox_coins_gte_0"),
            models.CheckConstraint(
                condition=models.Q(fault_rate__gte=0, fault_rate__lte=1),
                name="sandbox_fault_rate_0_1",
            ),
            models.CheckConstraint(
                condition=models.Q(latency_ms_min__lte=models.F("latency_ms_max")),
                name="sandbox_latency_min_lte_max",
            ),
        ]

    def __str__(self) -> str:
        return f"sandbox campaign {self.campaign_id}"


class SandboxReward(models.Model):
    campaign = models.ForeignKey(SandboxCampaign, on_delete=models.CASCADE, related_name="rewards")
    # The ID Mokugift would have issued: random, because it also names the public reward page.
    remote_id = models.CharField(max_length=40, unique=True)
    # The create call that made it; a multi call makes many rewards in one transaction.
    transaction_id = models.CharField(max_length=40, db_index=True)
    # Exactly one of the two is set: by email (reward, reward_url, multi...) or by ID (..2).
    recipient_email = models.CharField(max_length=254, blank=True)
    recipient_id = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField()
    tree_count = models.PositiveIntegerField()
    # Whether Mokugift would have emailed it (the reward and multi_rewards calls).
    emailed = models.BooleanField(default=False)
    url = models.URLField(max_length=500)

    class Meta:
        ordering = ["created", "pk"]
        indexes = [
            # Serves both queries: a campaign's rewards in one month, and all of them, in order.
            models.Index(fields=["campaign", "created", "id"], name="sandbox_reward_by_date"),
        ]

    def __str__(self) -> str:
        return f"sandbox reward {self.remote_id} for {self.recipient_email or self.recipient_id}"

    @property
    def recipient(self) -> str:
        return self.recipient_email or self.recipient_id
