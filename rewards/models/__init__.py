from django.db import models

from rewards.models.backoff import CampaignBackoff
from rewards.models.ledger import Batch, Send, SendEvent
from rewards.models.mirror import MirroredReward, MonthlySummary, SyncRun
from rewards.models.overview import LedgerMonth

__all__ = [
    "Batch",
    "CampaignBackoff",
    "LedgerMonth",
    "Send",
    "SendEvent",
    "MirroredReward",
    "MonthlySummary",
    "SyncRun",
    "column_width",
]


def column_width(model: type[models.Model], name: str) -> int:
    """The width of a model's text column: a longer value cannot be stored, nor sent."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.CharField) or field.max_length is None:
        raise TypeError(f"{model.__name__}.{name} is not a text column of a fixed width")
    return field.max_length
