"""Small helpers of the mirror tests: sandbox rewards and ledger rows made directly."""

from __future__ import annotations

import datetime as dt
import itertools

from rewards.models import Batch, MirroredReward, Send
from sandbox.models import SandboxCampaign, SandboxReward

_serial = itertools.count(1)


def sandbox_rewards_add(campaign_id: str, *dates: dt.datetime, trees: int = 1, **fields):
    """Rewards in the sandbox's own table, as if its create calls had made them."""
    campaign = SandboxCampaign.objects.get(campaign_id=campaign_id)
    made = []
    for date in dates:
        n = next(_serial)
        made.append(
            SandboxReward.objects.create(
                campaign=campaign,
                remote_id=fields.get("remote_id", f"sb-{campaign_id}-{n}"),
                transaction_id=f"t-{n}",
                recipient_email=fields.get("recipient_email", f"person{n}@example.com"),
                recipient_id=fields.get("recipient_id", ""),
                created=date,
                tree_count=trees,
                url=f"http://sandbox.test/r/{n}",
            )
        )
    return made


def mirror_add(campaign, date: dt.datetime, *, remote_id: str | None = None, **fields):
    n = next(_serial)
    return MirroredReward.objects.create(
        campaign=campaign,
        remote_id=remote_id or f"m-{n}",
        date=date,
        recipient_email=fields.pop("recipient_email", f"person{n}@example.com"),
        recipient_id=fields.pop("recipient_id", ""),
        tree_count=fields.pop("tree_count", 1),
        first_seen_at=date,
        last_seen_at=date,
        **fields,
    )


def send_add(campaign, *, remote_id: str, sent_at: dt.datetime, by=None, name: str = "", **kw):
    batch = kw.pop("batch", None) or Batch.objects.create(
        campaign=campaign, mode="link", source="single", created_by=by
    )
    return Send.objects.create(
        batch=batch,
        row_number=Send.objects.filter(batch=batch).count() + 2,
        recipient=kw.pop("recipient", f"{remote_id}@example.com"),
        name=name,
        state=kw.pop("state", Send.State.SENT),
        remote_id=remote_id,
        sent_at=sent_at,
        **kw,
    )
