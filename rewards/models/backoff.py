"""A campaign whose Mokugift endpoint misbehaves, backed off: its calls wait for a while."""

from __future__ import annotations

from django.db import models


class CampaignBackoff(models.Model):
    """Calls of a campaign that failed the way a misbehaving endpoint fails (a timeout, an
    answer past the deadline, one that is not the API's XML, a 5xx) and how long the campaign's
    next calls wait. One row per campaign, kept once written: a create call that gets an
    answer from Mokugift sets `failures` back to 0 (rewards/services/backoff.py)."""

    campaign = models.OneToOneField(
        "campaigns.Campaign", on_delete=models.CASCADE, primary_key=True, related_name="backoff"
    )
    # In a row; each one doubles the wait (calls failing together count once).
    failures = models.PositiveIntegerField(default=0)
    # No call of the campaign before this moment.
    until = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    # The last failure, as the client said it (never a passcode: the client scrubs it).
    reason = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Backoff of {self.campaign_id}: {self.failures} until {self.until}"
