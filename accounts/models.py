"""People's invitations. The people themselves are Django's users (a role is their group,
their campaigns a campaigns.CampaignAccess); their sign-in is django-allauth's."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from campaigns import roles

ROLE_CHOICES = [(role, role) for role in (roles.MARKETING, roles.MANAGER, roles.ADMIN)]


class Invitation(models.Model):
    """An invitation by email to join with a role and campaigns. Its link works once, for
    INVITATION_DAYS; only a hash of its token is kept (the token is in the mail alone)."""

    email = models.EmailField()
    role = models.CharField(max_length=20, choices=ROLE_CHOICES)
    all_campaigns = models.BooleanField(default=False)
    campaigns = models.ManyToManyField("campaigns.Campaign", blank=True, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    # None: invited from the command line (user_invite).
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Invitation of {self.email} as {self.role}"

    @property
    def pending(self) -> bool:
        return (
            self.accepted_at is None
            and self.withdrawn_at is None
            and self.expires_at > timezone.now()
        )


class Profile(models.Model):
    """A person's own settings: their time zone (for "send at" and the times pages show) and
    which kinds of notice they turned off (notices.models.Kind values)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    # An IANA name ("Europe/Berlin"); empty: the server's TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True)
    notices_off = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"Profile of {self.user}"
