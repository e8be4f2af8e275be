"""The API's bodies: what it reads (…In) and what it answers (…Out). The OpenAPI document is
written from these, so a field's description here is its documentation."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from ninja import Field, Schema

from rewards.services.csv_import import MAX_ROWS

ModeName = Literal["email", "link", "link-id"]
BatchState = Literal["approval", "scheduled", "sending", "paused", "cancelled", "declined", "done"]
RowState = Literal["waiting", "sending", "sent", "failed", "unknown", "cancelled"]


class RecipientIn(Schema):
    recipient: str = Field(
        max_length=1000,
        description="An email address (modes email and link) or your own recipient ID "
        "(mode link-id).",
    )
    name: str = Field("", max_length=1000, description="The recipient's name, optional.")


class BatchIn(Schema):
    campaign: str = Field(max_length=100, description="The Mokugift campaign ID.")
    mode: ModeName = Field(
        description="email: Mokugift emails the reward; link: you get its link (by email "
        "address); link-id: you get its link (by your recipient ID)."
    )
    recipients: list[RecipientIn] = Field(min_length=1, max_length=MAX_ROWS)
    send_at: dt.datetime | None = Field(
        None,
        description="When to send, ISO 8601 with a time zone offset; absent or past: at once.",
    )


class DeclineIn(Schema):
    reason: str = Field(min_length=1, max_length=2000, description="Why, for the sender.")


class Counts(Schema):
    waiting: int
    sending: int
    sent: int
    failed: int
    unknown: int
    cancelled: int


class FailureOut(Schema):
    reason: str
    rows: int


class ApprovalOut(Schema):
    needed: bool
    decided_by: str | None
    decided_at: dt.datetime | None
    decline_reason: str


class BatchOut(Schema):
    id: int
    state: BatchState
    campaign: str = Field(description="The Mokugift campaign ID.")
    campaign_name: str
    mode: ModeName
    source: str
    created_by: str | None
    created_at: dt.datetime
    send_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    paused_reason: str
    total: int
    counts: Counts = Field(description="Rows by state.")
    failures: list[FailureOut] = Field(description="The failed rows grouped by their reason.")
    approval: ApprovalOut


class RowOut(Schema):
    row: int
    recipient: str
    name: str
    state: RowState
    reward_id: str = Field(description="Mokugift's reward ID, once sent.")
    url: str = Field(description="The reward's page, once sent.")
    error: str
    sent_at: dt.datetime | None
    updated_at: dt.datetime


class RowPage(Schema):
    rows: list[RowOut]
    next_cursor: str | None = Field(description="Give it as `cursor` for the next page.")


class CampaignOut(Schema):
    campaign: str = Field(description="The Mokugift campaign ID.")
    name: str
    environment: str
    enabled: bool
    approval: str = Field(description="never, always, or above (more rows than approval_above).")
    approval_above: int | None
    monthly_budget: int | None = Field(description="Rewards a month; null: no limit.")
    monthly_budget_per_person: int | None
    budget_used_this_month: int | None = Field(
        description="Rewards counted against this month's budget; null: no budget."
    )


class RewardOut(Schema):
    id: int
    reward_id: str = Field(description="Mokugift's reward ID.")
    date: dt.datetime
    recipient_email: str
    recipient_id: str
    trees: int
    campaign: str
    name: str = Field(description="The name sent with it, when it was sent from here.")
    batch: int | None
    missing_since: dt.datetime | None


class RewardPage(Schema):
    rewards: list[RewardOut]
    next_cursor: str | None


class MonthOut(Schema):
    month: int
    mokugift_rewards: int | None = Field(description="Mokugift's count; null: never synced.")
    mokugift_trees: int | None
    ours_rewards: int
    ours_trees: int
    ledger_not_in_mokugift: int
    elsewhere: int | None
    paid_twice: int
    synced_at: dt.datetime | None


class ReportOut(Schema):
    year: int
    campaign: str | None
    months: list[MonthOut]
    totals: MonthOut
