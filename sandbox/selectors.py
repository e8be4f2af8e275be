"""Reads of the sandbox: the rows behind the two query calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.db.models import CharField, Func

from sandbox.models import SandboxCampaign, SandboxReward

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType

# Rows fetched per round trip of the server-side cursor: memory stays flat for any campaign.
CHUNK_SIZE = 2000


class UtcText(Func):
    """A timestamp as the document writes dates, "YYYY-MM-DD HH:MM:SS" in UTC, formatted by the
    database (whatever its session's time zone or DateStyle). PostgreSQL and SQLite only."""

    output_field = CharField()

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> _AsSqlType:
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> _AsSqlType:
        # SQLite holds Django's timestamps as UTC text; `%%%%` is one `%` once Django's two
        # layers of formatting are done.
        template = "strftime('%%%%Y-%%%%m-%%%%d %%%%H:%%%%M:%%%%S', %(expressions)s)"
        return self.as_sql(compiler, connection, template=template, **extra)


def sandbox_campaign_get(*, campaign_id: str) -> SandboxCampaign | None:
    return SandboxCampaign.objects.filter(campaign_id=campaign_id).first()


def sandbox_rewards_rows(
    *,
    campaign: SandboxCampaign,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Iterator[tuple[str, str, str, str, int]]:
    """(remote_id, recipient_email, recipient_id, created, tree_count) in creation order,
    created in [start, end) when given. Streams: never holds the whole campaign in memory.

    `created` comes as text, "YYYY-MM-DD HH:MM:SS" in UTC, written by the database: turning
    200,000 timestamps into datetimes and back into text was a third of an `all_rewards`
    answer's time.
    """
    rewards = SandboxReward.objects.filter(campaign=campaign)
    if start is not None:
        rewards = rewards.filter(created__gte=start)
    if end is not None:
        rewards = rewards.filter(created__lt=end)
    return (
        rewards.order_by("created", "id")
        .annotate(created_text=UtcText("created"))
        .values_list("remote_id", "recipient_email", "recipient_id", "created_text", "tree_count")
        .iterator(chunk_size=CHUNK_SIZE)
    )
