"""The ledger: one row per intended reward, written before anything is sent.

The database, not the broker, is the source of truth. A row moves only by a conditional
UPDATE (`Send.objects.filter(pk=..., state=...).update(...)`), so two workers, a redelivered
task or a double click can never both send it.
"""

from __future__ import annotations

from typing import TypedDict

from django.conf import settings
from django.db import models


class Mode(models.TextChoices):
    # The API's three ways to make a reward, in words a marketer uses.
    EMAIL = "email", "Mokugift emails it"
    LINK = "link", "Give me the link (email address)"
    LINK_ID = "link-id", "Give me the link (our recipient ID)"


class LeftOutRow(TypedDict):
    """An upload row left out of a batch, and why (`Batch.left_out` holds a list of them)."""

    row: int
    column: str
    message: str


class Batch(models.Model):
    class State(models.TextChoices):
        # Waiting for a second person (Campaign.approval); nothing of it is claimed.
        AWAITING_APPROVAL = "approval", "Awaiting approval"
        # Approved (or needing none), waiting for its send_at.
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"
        DECLINED = "declined", "Declined"
        DONE = "done", "Done"

    class Source(models.TextChoices):
        SINGLE = "single", "One reward"
        CSV = "csv", "CSV upload"
        COMMAND = "command", "Command line"
        API = "api", "API"

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.PROTECT, related_name="batches"
    )
    mode = models.CharField(max_length=10, choices=Mode)
    source = models.CharField(max_length=10, choices=Source)
    state = models.CharField(max_length=10, choices=State, default=State.SENDING)
    # Why a batch is paused (e.g. Mokugift error 105, no moku-coins left), shown as a banner.
    paused_reason = models.TextField(blank=True)
    filename = models.CharField(max_length=255, blank=True)
    # A key the form carries: a double-submitted form finds the batch it already made.
    idempotency_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    # Upload rows left out because they did not pass: a list of LeftOutRow.
    left_out = models.JSONField(default=list, blank=True)
    # Who said "send anyway" to recipients rewarded by this campaign in the last 30 days.
    send_anyway_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    send_anyway_at = models.DateTimeField(null=True, blank=True)
    # The rows flagged as recently rewarded that were sent anyway (LeftOutRow each): what the
    # creator saw at confirmation, for the approver to see too.
    sent_anyway = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Spending controls (rewards/services/controls.py). When it is to go out (None: at once).
    send_at = models.DateTimeField(null=True, blank=True)
    # When it went out: its first chains were queued.
    started_at = models.DateTimeField(null=True, blank=True)
    # The first day of the month (UTC) whose budget its rows use; None: nothing reserved yet
    # (awaiting approval, declined). Its rows that end failed or cancelled use none.
    budget_month = models.DateField(null=True, blank=True)
    approval_needed = models.BooleanField(default=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decline_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["campaign", "budget_month"], name="batch_budget_month"),
            models.Index(
                fields=["send_at"],
                name="batch_scheduled_send_at",
                condition=models.Q(state="scheduled"),
            ),
        ]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.get_source_display()}, {self.campaign_id})"


class Send(models.Model):
    """One intended reward. The state machine:

    waiting -> sending -> sent | failed | unknown
    unknown -> sent (found at Mokugift) | waiting (provably absent: may be tried again)
    unknown -> failed | sent (an operator decided, with a reason)
    waiting -> cancelled (the batch was cancelled before the row was claimed)
    waiting | failed | cancelled -> sent (a reward made after it was proven absent)

    Paid twice is not a state: a *sent* row whose first reward arrived late, after the row had
    been proven absent and sent again, keeps both reward IDs and `paid_twice_at`.
    """

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Outcome unknown"
        CANCELLED = "cancelled", "Cancelled"

    # No index of its own: (batch, row_number) and (batch, state, row_number) start with it.
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="sends", db_index=False)
    row_number = models.PositiveIntegerField(
        help_text="The row in the upload, counting the header as 1."
    )
    # An email address, or for the link-id mode our own recipient ID.
    recipient = models.CharField(max_length=254)
    name = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=10, choices=State, default=State.WAITING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the current attempt was claimed: the sweep finds rows stuck in sending by it.
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    # When the first attempt was claimed: reconciliation counts any unclaimed reward to this
    # recipient made since then as this row's (a late answer to an earlier attempt included).
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Looked up through send_remote_id_unique (add `.exclude(remote_id="")` to a lookup so
    # that PostgreSQL may use that partial index).
    remote_id = models.CharField("Mokugift reward ID", max_length=100, blank=True)
    url = models.URLField(max_length=500, blank=True)
    # Found by reconciliation: the query calls do not return reward URLs.
    link_not_recovered = models.BooleanField(default=False)
    transaction_id = models.CharField(max_length=100, blank=True)
    error_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When an attempt of this row was last taken as never made (proven absent, or an operator
    # marked it failed). Mokugift may still commit it later than its horizon promised, so
    # reconciliation keeps looking for its reward for MOKUGIFT_LATE_WATCH after this.
    absent_at = models.DateTimeField(null=True, blank=True)
    # The second reward this recipient got for this one intended send, and when we found it.
    duplicate_remote_id = models.CharField(
        # db_default: the batch insert's raw SQL names only the columns it sets.
        "other Mokugift reward ID (paid twice)",
        max_length=100,
        blank=True,
        db_default="",
    )
    paid_twice_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "row_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "row_number"], name="send_row_unique_in_batch"
            ),
            # One Mokugift reward pays for one row: reconciliation can never give a reward
            # to two rows, even when two passes race.
            models.UniqueConstraint(
                fields=["remote_id"],
                condition=~models.Q(remote_id=""),
                name="send_remote_id_unique",
            ),
            # A late reward is counted against one row only, however passes race.
            models.UniqueConstraint(
                fields=["duplicate_remote_id"],
                condition=~models.Q(duplicate_remote_id=""),
                name="send_duplicate_remote_id_unique",
            ),
        ]
        indexes = [
            # The claim walks a batch's waiting rows in row order and stops after one chunk:
            # with row_number in the index it never sorts a 50,000-row batch per chunk.
            models.Index(fields=["batch", "state", "row_number"], name="send_batch_state_row"),
            # Every claim and every answer rewrites a chunk of rows, and each index costs a
            # write per row (no HOT update: `state` is indexed). So the sweep's and the
            # reports' indexes are partial: a row enters them only in the states they look at.
            models.Index(
                fields=["state", "attempt_started_at"],
                condition=models.Q(state__in=["sending", "unknown"]),
                name="send_in_flight",
            ),
            models.Index(fields=["sent_at"], condition=models.Q(state="sent"), name="send_sent_at"),
            # Rows whose reward may still arrive late, and rows paid twice: few, and looked
            # up on every reconciliation pass and on the pages.
            models.Index(
                fields=["absent_at"],
                condition=models.Q(absent_at__isnull=False),
                name="send_absent_watch",
            ),
            models.Index(
                fields=["paid_twice_at"],
                condition=models.Q(paid_twice_at__isnull=False),
                name="send_paid_twice",
            ),
            models.Index(fields=["recipient"]),
        ]

    def __str__(self) -> str:
        return f"Send {self.pk} to {self.recipient} ({self.state})"


# Rows that will still move without anyone acting, and rows that will not move again unless
# someone acts (retry the failed, resume the batch). Every row is in one or the other.
OPEN_STATES = (Send.State.WAITING, Send.State.SENDING, Send.State.UNKNOWN)
FINISHED_STATES = (Send.State.SENT, Send.State.FAILED, Send.State.CANCELLED)


class SendEvent(models.Model):
    """The history of a ledger row: every state change, with why."""

    # No foreign key in the database (the ORM still deletes a row's history with it): every
    # history row is written in the transaction, most in the very statement, that updates its
    # ledger row, by the ids that UPDATE matched, and nothing deletes a ledger row but the
    # ORM (no admin for them; a campaign is PROTECT). PostgreSQL's check of each new row
    # could not fail, and it was a fifth of the database's time per chunk of a send (two
    # history rows per row and attempt).
    send = models.ForeignKey(
        Send, on_delete=models.CASCADE, related_name="events", db_constraint=False
    )
    at = models.DateTimeField(auto_now_add=True)
    from_state = models.CharField(max_length=10, blank=True)
    to_state = models.CharField(max_length=10)
    note = models.TextField(blank=True)
    # The person who decided this change (an operator's decision on an unknown row); none
    # for the engine's own moves.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_state or 'new'} -> {self.to_state}"
