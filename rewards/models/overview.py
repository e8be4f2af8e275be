"""A small aggregate of our ledger by month, for the home page (rewards/selectors/overview.py).

The ledger's rows are too many to count per page view (the home page answers in under 50 ms);
these rows are few (campaigns x months x senders, the last thirteen months) and are rewritten
as a whole by rewards.services.ledger_months.ledger_months_refresh: at the end of each batch
and after each sync. Rows sent after the refresh are counted from the ledger itself (a range of
its sent_at index), so "sent" is never behind; trees and failures are as of the refresh.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LedgerMonth(models.Model):
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    # The batch's creator; none for the command line (or a deleted user).
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    year = models.PositiveSmallIntegerField()
    month = models.PositiveSmallIntegerField()
    # Sent rows by the month they were sent (sent_at up to refreshed_at), as the report counts.
    sent = models.PositiveIntegerField(default=0)
    # Their trees, from the mirrored reward each is linked to (0 until a sync links it).
    trees = models.PositiveIntegerField(default=0)
    # Rows failed, of the batches started in the month.
    failed = models.PositiveIntegerField(default=0)
    # The same for every row: when the aggregate was last rewritten.
    refreshed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["year", "month"], name="ledger_month_period")]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.year}-{self.month:02d} by {self.sender_id}"
