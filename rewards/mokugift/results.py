"""What the client's calls return: a create call's CreateResult (single) or MultiResult (its
CreatedRewards and UnsentRewards), a query call's RewardRecord per reward and its Summary.
Plain values, made by the parser; nothing here reads or checks an answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple

from rewards.mokugift.errors import INTERNAL_ERROR


@dataclass(frozen=True)
class CampaignCheck:
    """Mokugift's answer to a connection check: `accepted` (code 111) or refused (101-104)."""

    accepted: bool
    code: int
    description: str


@dataclass(frozen=True)
class CreatedReward:
    id: str
    recipient: str  # the email address, or the recipient ID in link-id mode
    url: str | None  # the reward's page, for the link modes; None when Mokugift emails it


@dataclass(frozen=True)
class CreateResult:
    transaction_id: str | None
    reward: CreatedReward


@dataclass(frozen=True)
class UnsentReward:
    recipient: str  # the address or ID, any "Full Name <...>" around it removed
    given: str  # the item as the server returned it
    code: int
    description: str

    @property
    def outcome_unknown(self) -> bool:
        # 110 on a create is "may or may not have been made", for one item as for a call.
        return self.code == INTERNAL_ERROR


@dataclass(frozen=True)
class MultiResult:
    status: str  # "Success" | "Part_Failed"
    transaction_id: str | None
    rewards: list[CreatedReward]
    unsent: list[UnsentReward]


class RewardRecord(NamedTuple):
    """A reward of a query answer. A tuple, not a dataclass: a sync makes one per reward
    listed (a million for a big `all_rewards`), and the mirror's COPY writes it as it is."""

    id: str
    date: dt.datetime  # aware, UTC
    recipient_email: str  # "" for a reward made by recipient ID
    recipient_id: str  # "" for a reward made by email address
    tree_count: int


@dataclass(frozen=True)
class Summary:
    reward_count: int
    tree_count: int
