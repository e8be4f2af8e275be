from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from campaigns.fields import EncryptedTextField


class Environment(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    LIVE = "live", "Live"


def check_verdict(ok: bool | None) -> str:
    """The word for a connection check's outcome, shown before its message."""
    return {True: "Accepted", False: "Refused", None: "Could not check"}[ok]


class Approval(models.TextChoices):
    """When a batch on the campaign needs a second person's approval (Campaign.approval)."""

    NEVER = "never", "Never"
    ALWAYS = "always", "Always"
    ABOVE = "above", "Above a number of rewards"


class Campaign(models.Model):
    name = models.CharField("display name", max_length=200)
    campaign_id = models.CharField(
        "Mokugift campaign ID", max_length=100, help_text="As Mokugift issued it."
    )
    # The API base URL follows from the environment and the settings, never from a field a
    # person types in: nobody can point the server at an internal address.
    environment = models.CharField(max_length=10, choices=Environment, default=Environment.SANDBOX)
    passcode = EncryptedTextField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The last connection check (campaigns.services.campaign_check): when, whether Mokugift
    # accepted the campaign ID and passcode, and its words. None: never checked.
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_message = models.CharField(max_length=300, blank=True, default="")
    # Spending controls (rewards/services/controls.py enforces them).
    approval = models.CharField(
        "approval by a second person", max_length=10, choices=Approval, default=Approval.NEVER
    )
    approval_above = models.PositiveIntegerField(
        "approval above", null=True, blank=True, help_text="Batches of more rewards than this."
    )
    monthly_budget = models.PositiveIntegerField(
        "monthly budget",
        null=True,
        blank=True,
        help_text="Rewards per calendar month (UTC, as Mokugift counts). Empty: no limit.",
    )
    monthly_budget_per_person = models.PositiveIntegerField(
        "monthly budget per person",
        null=True,
        blank=True,
        help_text="Rewards each person may send per calendar month. Empty: no limit.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "campaign_id"], name="campaign_id_unique_per_environment"
            )
        ]
        # The three roles are made of these (see migration 0002_roles).
        permissions = [
            ("manage_campaigns", "Can manage campaigns and their credentials"),
            ("send_rewards", "Can send rewards"),
            ("view_reports", "Can browse rewards and read reports"),
            ("export_rewards", "Can export rewards and reports"),
            ("approve_batches", "Can approve or decline other people's batches"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.campaign_id}, {self.environment})"

    @property
    def last_check_verdict(self) -> str:
        """ "Accepted", "Refused", "Could not check", or "Never checked"."""
        if self.last_check_at is None:
            return "Never checked"
        return check_verdict(self.last_check_ok)

    def clean(self) -> None:
        # needs_approval reads "above" without a number as "never": refuse to store that.
        if self.approval == Approval.ABOVE and self.approval_above is None:
            raise ValidationError(
                {"approval_above": "Approval above a number of rewards needs the number."}
            )

    def needs_approval(self, *, rows: int) -> bool:
        """The campaign's approval rule, the one place it is read: does a batch of `rows`
        rewards wait for a second person?"""
        if self.approval == Approval.ALWAYS:
            return True
        if self.approval == Approval.ABOVE:
            return self.approval_above is not None and rows > self.approval_above
        return False

    @property
    def approval_words(self) -> str:
        if self.approval == Approval.ABOVE and self.approval_above is not None:
            return f"Above {self.approval_above} rewards"
        return self.get_approval_display()

    @property
    def api_base_url(self) -> str:
        if self.environment == Environment.LIVE:
            return settings.MOKUGIFT_LIVE_URL
        return settings.MOKUGIFT_SANDBOX_URL


class CampaignAccess(models.Model):
    """Which campaigns a person may see and work on: all of them, or the chosen list.

    An admin sees every campaign whatever this says. A person without a row has every
    campaign (campaigns.selectors.ACCESS_WITHOUT_A_ROW says why): no one lost a campaign when
    this arrived, and a person made with createsuperuser or in the Django admin can work."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="campaign_access"
    )
    all_campaigns = models.BooleanField(
        default=True, help_text="Untick to limit this person to the campaigns chosen below."
    )
    campaigns = models.ManyToManyField(
        Campaign,
        blank=True,
        related_name="+",
        help_text="The campaigns this person may see and send on, when not all of them.",
    )

    class Meta:
        verbose_name = "campaign access"
        verbose_name_plural = "campaign access"

    def __str__(self) -> str:
        return f"Campaign access of {self.user}"
