from rewards.models.backoff import CampaignBackoff
from rewards.models.ledger import Batch, Send, SendEvent
from rewards.models.mirror import MirroredReward, MonthlySummary, SyncRun

__all__ = [
    "Batch",
    "CampaignBackoff",
    "Send",
    "SendEvent",
    "MirroredReward",
    "MonthlySummary",
    "SyncRun",
]
