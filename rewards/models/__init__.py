from rewards.models.ledger import Batch, Send, SendEvent
from rewards.models.mirror import MirroredReward, MonthlySummary, SyncRun

__all__ = ["Batch", "Send", "SendEvent", "MirroredReward", "MonthlySummary", "SyncRun"]
