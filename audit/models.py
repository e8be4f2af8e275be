"""The audit trail: one append-only record of every sensitive act. Never a secret."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Kind(models.TextChoices):
    """Every kind of act the trail records, the one list of them. The value names its area
    first, so that a filter by area is a prefix."""

    SIGN_IN = "account.sign_in", "Signed in"
    SIGN_IN_FAILED = "account.sign_in_failed", "Sign-in failed"
    SIGN_OUT = "account.sign_out", "Signed out"
    PASSWORD_CHANGED = "account.password_changed", "Password changed"
    PASSWORD_RESET_REQUESTED = "account.password_reset_requested", "Password reset asked for"
    PASSWORD_RESET = "account.password_reset", "Password reset"
    EMAIL_CHANGED = "account.email_changed", "Email address changed"
    MFA_ACTIVATED = "account.mfa_activated", "Two-factor sign-in set up"
    MFA_DEACTIVATED = "account.mfa_deactivated", "Two-factor sign-in removed"
    RECOVERY_CODES_GENERATED = "account.recovery_codes_generated", "Recovery codes made anew"
    SESSION_ENDED = "account.session_ended", "Session ended"

    PERSON_ADDED = "team.person_added", "Person added"
    INVITATION_SENT = "team.invitation_sent", "Invitation sent"
    INVITATION_ACCEPTED = "team.invitation_accepted", "Invitation accepted"
    INVITATION_REVOKED = "team.invitation_revoked", "Invitation withdrawn"
    ROLE_CHANGED = "team.role_changed", "Role changed"
    ACCESS_CHANGED = "team.access_changed", "Campaign access changed"
    PERSON_DEACTIVATED = "team.person_deactivated", "Person deactivated"
    PERSON_REACTIVATED = "team.person_reactivated", "Person reactivated"

    CAMPAIGN_CREATED = "campaign.created", "Campaign added"
    CAMPAIGN_UPDATED = "campaign.updated", "Campaign changed"
    PASSCODE_REPLACED = "campaign.passcode_replaced", "Passcode replaced"
    CAMPAIGN_ENABLED = "campaign.enabled", "Campaign enabled"
    CAMPAIGN_DISABLED = "campaign.disabled", "Campaign disabled"
    CAMPAIGN_CHECKED = "campaign.checked", "Connection checked"
    KEY_ROTATED = "campaign.key_rotated", "Passcode re-encrypted under a new key"

    BATCH_CREATED = "batch.created", "Batch created"
    BATCH_SEND_ANYWAY = "batch.send_anyway", "Sent anyway to recently rewarded recipients"
    BATCH_CANCELLED = "batch.cancelled", "Batch cancelled"
    BATCH_RESUMED = "batch.resumed", "Batch resumed"
    BATCH_RETRIED = "batch.retried", "Failed rows sent again"
    SEND_DECIDED = "batch.send_decided", "Unknown row decided by an operator"
    BATCH_APPROVED = "batch.approved", "Batch approved"
    BATCH_DECLINED = "batch.declined", "Batch declined"
    BATCH_RESCHEDULED = "batch.rescheduled", "Batch rescheduled"
    BATCH_STARTED = "batch.started", "Scheduled batch started"

    EXPORT_DOWNLOADED = "export.downloaded", "Export downloaded"

    API_KEY_CREATED = "api.key_created", "API key made"
    API_KEY_REVOKED = "api.key_revoked", "API key revoked"

    WEBHOOK_ADDED = "webhook.added", "Webhook endpoint added"
    WEBHOOK_CHANGED = "webhook.changed", "Webhook endpoint changed"
    WEBHOOK_REMOVED = "webhook.removed", "Webhook endpoint removed"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated", "Webhook secret rotated"
    WEBHOOK_SENT_AGAIN = "webhook.sent_again", "Webhook delivery sent again"


class AuditEvent(models.Model):
    """One sensitive act: who, when, from which address, what. Append-only: nothing in the
    code changes or deletes a row, the Django admin cannot, and on PostgreSQL a trigger refuses
    UPDATE and DELETE (migration 0002). A person or campaign with events cannot be deleted
    (PROTECT): history keeps its names, and people are deactivated instead."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=40, choices=Kind)
    # Who acted: None for the system (a worker, a command without a person). actor_name keeps
    # the name as it was, and the name typed at a failed sign-in, which may be no one's.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    actor_name = models.CharField(max_length=254, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # What it was done to, where that is a person or a campaign (both for an access change).
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    # The batch by its number, without a key: the trail must not stop a batch's deletion in a
    # test, and a number is all a reader needs to find it.
    batch_pk = models.BigIntegerField(null=True, blank=True)
    # The rest of what happened, for the page to put in words: {"field": [old, new]}, a filter,
    # counts. Never a passcode, key, token or code: audit.services.audit_record refuses the
    # names that would hold one.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["kind", "-at"], name="audit_kind_at"),
            models.Index(fields=["campaign", "-at"], name="audit_campaign_at"),
            models.Index(fields=["actor", "-at"], name="audit_actor_at"),
        ]

    def __str__(self) -> str:
        who = self.actor_name or "system"
        return f"{self.get_kind_display()} by {who} at {self.at:%Y-%m-%d %H:%M}"
