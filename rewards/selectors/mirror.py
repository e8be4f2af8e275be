"""Reads of the mirror: the rewards page (filters, search, keyset pages), one reward, the
monthly report and the sync status. Everything here reads local tables only, so the pages work
(and stay fast) while the API is down.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import ExtractMonth

from campaigns.models import Campaign
from rewards.models import Batch, MirroredReward, MonthlySummary, Send, SyncRun

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PAGE_SIZE = 50

SOURCE_DASHBOARD = "dashboard"
SOURCE_ELSEWHERE = "elsewhere"


# --- Browsing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardFilters:
    """What the rewards page filters by; every field empty means everything."""

    campaign_ids: tuple[int, ...] = ()
    # Dates are UTC days, both ends included.
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    source: str = ""  # "", SOURCE_DASHBOARD or SOURCE_ELSEWHERE
    batch_id: int | None = None
    sender_id: int | None = None
    # Part of an email address, a recipient ID or (from our ledger) a name.
    search: str = ""
    missing_only: bool = False
    newest_first: bool = True
    # Not a filter a person picks: the campaigns they may see (None: every campaign), from
    # campaigns.selectors.campaign_ids_visible_to. Empty: nothing.
    visible_ids: tuple[int, ...] | None = None


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def rewards_filter(*, filters: RewardFilters) -> QuerySet[MirroredReward]:
    """The one filtered queryset behind the table and the CSV, in page order."""
    rewards = MirroredReward.objects.all()
    if filters.visible_ids is not None:
        rewards = rewards.filter(campaign_id__in=filters.visible_ids)
    if filters.campaign_ids:
        rewards = rewards.filter(campaign_id__in=filters.campaign_ids)
    if filters.date_from:
        rewards = rewards.filter(date__gte=_utc_midnight(filters.date_from))
    if filters.date_to:
        rewards = rewards.filter(date__lt=_utc_midnight(filters.date_to + dt.timedelta(days=1)))
    if filters.source == SOURCE_DASHBOARD:
        rewards = rewards.filter(send__isnull=False)
    elif filters.source == SOURCE_ELSEWHERE:
        rewards = rewards.filter(send__isnull=True)
    if filters.batch_id:
        rewards = rewards.filter(send__batch_id=filters.batch_id)
    if filters.sender_id:
        rewards = rewards.filter(send__batch__created_by_id=filters.sender_id)
    if filters.search:
        term = filters.search.strip()
        rewards = rewards.filter(
            Q(recipient_email__icontains=term)
            | Q(recipient_id__icontains=term)
            | Q(remote_id=term)
            | Q(send__name__icontains=term)
        )
    if filters.missing_only:
        rewards = rewards.filter(missing_since__isnull=False)
    if filters.newest_first:
        return rewards.order_by("-date", "-id")
    return rewards.order_by("date", "id")


# What a row of the rewards table shows, and nothing more: the page's one query stays narrow
# (the ledger row, its batch and its sender are wide), and the passcode is never loaded.
_ROW_FIELDS = (
    "date",
    "remote_id",
    "recipient_email",
    "recipient_id",
    "tree_count",
    "missing_since",
    "campaign__name",
    # The API names a reward's campaign by its Mokugift ID.
    "campaign__campaign_id",
    "send__name",
    "send__batch__created_by__username",
)


def _rows(rewards: QuerySet[MirroredReward]) -> QuerySet[MirroredReward]:
    return rewards.select_related("campaign", "send__batch__created_by").only(*_ROW_FIELDS)


def cursor_encode(*, date: dt.datetime, pk: int, forward: bool) -> str:
    raw = json.dumps([date.isoformat(), pk, 1 if forward else 0]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[dt.datetime, int, bool] | None:
    """(date, pk, forward), or None for a cursor that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        date, pk, forward = json.loads(raw)
        moment = dt.datetime.fromisoformat(date)
        if moment.tzinfo is None or not isinstance(pk, int):
            return None
        return moment, pk, bool(forward)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None


@dataclass
class RewardPage:
    rows: list[MirroredReward]
    # Cursors for the links; None where there is nothing more that way.
    newer: str | None = None
    older: str | None = None
    is_first: bool = True


def rewards_page(
    *,
    rewards: QuerySet[MirroredReward],
    newest_first: bool,
    cursor: str = "",
    size: int = PAGE_SIZE,
) -> RewardPage:
    """One page by keyset on (date, id): the cost of a page does not grow with its number.

    A cursor says "the rows after (date, id)" (forward, in the page's order) or "before" it.
    The `date <= d` (or `>=`) bound duplicates part of the keyset condition on purpose: it lets
    PostgreSQL seek into the (date, id) index instead of filtering from the top.
    """
    decoded = cursor_decode(cursor) if cursor else None
    if decoded is None:
        rows = list(_rows(rewards)[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        return _page(rows, newest_first, has_before=False, has_after=more)

    date, pk, forward = decoded
    # "Later in the page order": older rows when newest first.
    later_desc = forward == newest_first
    if later_desc:
        keyset = Q(date__lte=date) & (Q(date__lt=date) | Q(date=date, id__lt=pk))
        ordered = rewards.filter(keyset).order_by("-date", "-id")
    else:
        keyset = Q(date__gte=date) & (Q(date__gt=date) | Q(date=date, id__gt=pk))
        ordered = rewards.filter(keyset).order_by("date", "id")
    rows = list(_rows(ordered)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if forward:
        return _page(rows, newest_first, has_before=True, has_after=more)
    rows.reverse()
    return _page(rows, newest_first, has_before=more, has_after=True)


def _page(
    rows: list[MirroredReward], newest_first: bool, *, has_before: bool, has_after: bool
) -> RewardPage:
    page = RewardPage(rows=rows, is_first=not has_before)
    if rows and has_after:
        last = rows[-1]
        after = cursor_encode(date=last.date, pk=last.pk, forward=True)
    else:
        after = None
    if rows and has_before:
        first = rows[0]
        before = cursor_encode(date=first.date, pk=first.pk, forward=False)
    else:
        before = None
    if newest_first:
        page.older, page.newer = after, before
    else:
        page.newer, page.older = after, before
    return page


# Past this many rows the rewards page says "more than": an exact count of a million rows is a
# scan that would cost the page its speed budget; counting at most this many stays fast.
COUNT_LIMIT = 10_000


def rewards_count(
    *, rewards: QuerySet[MirroredReward], limit: int = COUNT_LIMIT
) -> tuple[int, bool]:
    """(count, more): the rows of the filter, counted over a LIMIT limit+1 subquery. `more` is
    True when there are more than `limit` (and count is then `limit`)."""
    counted = rewards.order_by().values("pk")[: limit + 1].count()
    return min(counted, limit), counted > limit


def cursor_for_day(*, day: dt.date, newest_first: bool) -> str:
    """A cursor that starts the page at a UTC day: its rewards and the older ones (newest
    first), or its rewards and the newer ones (oldest first). Id 0 is before every row."""
    if newest_first:
        return cursor_encode(date=_utc_midnight(day + dt.timedelta(days=1)), pk=0, forward=True)
    return cursor_encode(date=_utc_midnight(day), pk=0, forward=True)


def reward_get(*, pk: int, visible_ids: tuple[int, ...] | None = None) -> MirroredReward | None:
    """The reward, or None when there is none or it is on a campaign outside `visible_ids`."""
    rewards = MirroredReward.objects.filter(pk=pk)
    if visible_ids is not None:
        rewards = rewards.filter(campaign_id__in=visible_ids)
    return (
        rewards.select_related("campaign", "send__batch__created_by", "send__batch__send_anyway_by")
        .defer("campaign__passcode")
        .first()
    )


class FilterChoices(TypedDict):
    campaigns: list[Campaign]
    senders: list[User]


def filter_choices(*, visible_ids: tuple[int, ...] | None = None) -> FilterChoices:
    """The campaigns and senders the filter form offers (two small queries): of the campaigns
    in `visible_ids` (None: every campaign), and the people who sent on them."""
    user_model = get_user_model()
    batches = Batch.objects.exclude(created_by=None)
    campaigns = Campaign.objects.defer("passcode", "notes").order_by("name")
    if visible_ids is not None:
        batches = batches.filter(campaign_id__in=visible_ids)
        campaigns = campaigns.filter(pk__in=visible_ids)
    senders = user_model.objects.filter(pk__in=batches.values("created_by")).order_by("username")
    return {"campaigns": list(campaigns), "senders": list(senders)}


# --- Sync status ----------------------------------------------------------------------------


def sync_runs_latest(
    *, campaign_ids: list[int] | None = None, visible_ids: tuple[int, ...] | None = None
) -> list[SyncRun]:
    """The latest run that did something (not skipped) of each campaign, in one query: of the
    campaigns asked for (none: all) among those in `visible_ids` (None: every campaign)."""
    done = SyncRun.objects.exclude(outcome=SyncRun.Outcome.SKIPPED)
    if visible_ids is not None:
        done = done.filter(campaign_id__in=visible_ids)
    latest = done.filter(campaign_id=OuterRef("campaign_id")).order_by("-started_at", "-pk")
    runs = done.filter(pk=Subquery(latest.values("pk")[:1]))
    if campaign_ids:
        runs = runs.filter(campaign_id__in=campaign_ids)
    return list(
        runs.select_related("campaign").defer("campaign__passcode").order_by("campaign__name")
    )


# --- The monthly report ---------------------------------------------------------------------


@dataclass
class MonthRow:
    month: int
    mokugift_rewards: int | None = None  # None: never synced
    mokugift_trees: int | None = None
    ours_rewards: int = 0
    ours_trees: int = 0
    # Ours that Mokugift's mirror does not hold.
    ledger_not_in_mokugift: int = 0
    # Mokugift's, minus those linked to our ledger.
    elsewhere: int | None = None
    # Our sent rows for which the recipient got a second reward (a late commit): each cost two.
    paid_twice: int = 0
    synced_at: dt.datetime | None = None

    @property
    def label(self) -> str:
        return dt.date(2000, self.month, 1).strftime("%B")

    @property
    def difference(self) -> int | None:
        if self.mokugift_rewards is None:
            return None
        return self.mokugift_rewards - self.ours_rewards

    @property
    def disagrees(self) -> bool:
        """Mokugift's count is not ours (rewards sent elsewhere count too: the reconciliation
        columns say which), a reward of our ledger is not in Mokugift's list, or a row was
        paid twice."""
        if self.ledger_not_in_mokugift or self.paid_twice:
            return True
        if self.mokugift_rewards is None:
            return self.ours_rewards > 0
        return self.difference != 0


class CampaignTotals(TypedDict):
    campaign_id: int
    campaign: str
    mokugift_rewards: int | None  # None: never synced
    mokugift_trees: int | None
    ours_rewards: int
    ours_trees: int


class SenderTotals(TypedDict):
    sender_id: int | None  # None: the command line, or a deleted user
    sender: str
    rewards: int
    trees: int


@dataclass
class Report:
    year: int
    # The campaign asked for (empty: all), and those the reader may see (None: every one).
    campaign_ids: tuple[int, ...]
    months: list[MonthRow]
    by_campaign: list[CampaignTotals] = field(default_factory=list)
    by_sender: list[SenderTotals] = field(default_factory=list)
    ledger_not_in_mokugift: list[Send] = field(default_factory=list)
    visible_ids: tuple[int, ...] | None = None

    @property
    def totals(self) -> MonthRow:
        total = MonthRow(month=1)
        synced = [m for m in self.months if m.mokugift_rewards is not None]
        total.mokugift_rewards = sum(m.mokugift_rewards or 0 for m in synced) if synced else None
        total.mokugift_trees = sum(m.mokugift_trees or 0 for m in synced) if synced else None
        total.ours_rewards = sum(m.ours_rewards for m in self.months)
        total.ours_trees = sum(m.ours_trees for m in self.months)
        total.ledger_not_in_mokugift = sum(m.ledger_not_in_mokugift for m in self.months)
        total.paid_twice = sum(m.paid_twice for m in self.months)
        known = [m.elsewhere for m in self.months if m.elsewhere is not None]
        total.elsewhere = sum(known) if known else None
        return total

    def chart_data(
        self, *, today: dt.date | None = None
    ) -> dict[str, list[str] | list[int | None]]:
        """The chart's series, None where there is nothing to draw: a month Mokugift's side was
        never synced, a month nothing was sent from here, and every month still to come (a 0
        there would be a claim: "nothing sent in November" in May). The table has the zeros."""
        today = today or dt.datetime.now(dt.UTC).date()

        def come(m: MonthRow) -> bool:
            return (self.year, m.month) > (today.year, today.month)

        def ours(m: MonthRow, value: int) -> int | None:
            return None if come(m) or not m.ours_rewards else value

        return {
            "labels": [m.label[:3] for m in self.months],
            "mokugift_rewards": [None if come(m) else m.mokugift_rewards for m in self.months],
            "mokugift_trees": [None if come(m) else m.mokugift_trees for m in self.months],
            "ours_rewards": [ours(m, m.ours_rewards) for m in self.months],
            "ours_trees": [ours(m, m.ours_trees) for m in self.months],
        }


LEDGER_LIST_LIMIT = 200


def _scope(
    campaign_ids: tuple[int, ...], visible_ids: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    """The campaigns a report counts: those asked for (none: all) among those the reader may
    see; None for every campaign, empty for none."""
    if visible_ids is None:
        return tuple(campaign_ids) or None
    if not campaign_ids:
        return tuple(visible_ids)
    return tuple(pk for pk in campaign_ids if pk in visible_ids)


def report_years(*, visible_ids: tuple[int, ...] | None = None) -> list[int]:
    """Every year with data, newest first: a summary a sync read, a reward sent from here, or
    a mirrored reward (its first and last years: a min and a max on the date index, where a
    distinct over a million rows would be a scan). Of the campaigns in `visible_ids` only
    (None: every campaign)."""
    summaries = MonthlySummary.objects.all()
    sent = Send.objects.filter(state=Send.State.SENT)
    mirrored = MirroredReward.objects.all()
    if visible_ids is not None:
        summaries = summaries.filter(campaign_id__in=visible_ids)
        sent = sent.filter(batch__campaign_id__in=visible_ids)
        mirrored = mirrored.filter(campaign_id__in=visible_ids)
    years = set(summaries.values_list("year", flat=True).distinct())
    years |= {d.year for d in sent.dates("sent_at", "year")}
    ends = mirrored.aggregate(first=Min("date"), last=Max("date"))
    years |= {moment.astimezone(dt.UTC).year for moment in ends.values() if moment}
    return sorted(years, reverse=True)


def report_for_year(
    *, year: int, campaign_ids: tuple[int, ...] = (), visible_ids: tuple[int, ...] | None = None
) -> Report:
    """The monthly report of a year, from local tables, in a handful of queries.

    Mokugift's side is MonthlySummary (the API's own counts); ours is the ledger's sent rows by
    the month they were sent. "In our ledger, not in Mokugift": sent rows that no mirrored
    reward is linked to (see ledger_not_in_mokugift). "Sent elsewhere" is Mokugift's count
    less the mirrored rewards of the month linked to our ledger: exact when the mirror is in
    step with the summary, and cheap at a million rewards (no scan of the mirror).

    `campaign_ids`: the campaign asked for (empty: all); `visible_ids`: those the reader may
    see (None: every campaign). The report counts the first among the second.
    """
    scope = _scope(campaign_ids, visible_ids)
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    months = {m: MonthRow(month=m) for m in range(1, 13)}

    summaries = MonthlySummary.objects.filter(year=year)
    if scope is not None:
        summaries = summaries.filter(campaign_id__in=scope)
    for row in summaries.values("month").annotate(
        rewards=Sum("reward_count"), trees=Sum("tree_count")
    ):
        months[row["month"]].mokugift_rewards = row["rewards"]
        months[row["month"]].mokugift_trees = row["trees"]

    sends = Send.objects.filter(state=Send.State.SENT, sent_at__gte=start, sent_at__lt=end)
    if scope is not None:
        sends = sends.filter(batch__campaign_id__in=scope)
    for row in (
        sends.annotate(m=ExtractMonth("sent_at", tzinfo=dt.UTC))
        .values("m")
        .annotate(
            rewards=Count("pk"),
            trees=Sum("mirrored__tree_count"),
            absent=Count("pk", filter=_NOT_IN_MOKUGIFT),
            paid_twice=Count("pk", filter=Q(paid_twice_at__isnull=False)),
        )
        .order_by()
    ):
        month = months[row["m"]]
        month.ours_rewards = row["rewards"]
        month.ours_trees = row["trees"] or 0
        month.ledger_not_in_mokugift = row["absent"]
        month.paid_twice = row["paid_twice"]

    # Mirrored rewards of the year linked to our ledger, by the month Mokugift dates them.
    linked = MirroredReward.objects.filter(
        send__isnull=False, missing_since__isnull=True, date__gte=start, date__lt=end
    )
    if scope is not None:
        linked = linked.filter(campaign_id__in=scope)
    linked_by_month = dict(
        linked.annotate(m=ExtractMonth("date", tzinfo=dt.UTC))
        .values("m")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("m", "n")
    )
    for number, month in months.items():
        if month.mokugift_rewards is not None:
            month.elsewhere = month.mokugift_rewards - linked_by_month.get(number, 0)

    by_campaign: dict[int, dict[str, int | None]] = {}
    for row in summaries.values("campaign_id").annotate(
        rewards=Sum("reward_count"), trees=Sum("tree_count")
    ):
        by_campaign.setdefault(row["campaign_id"], {})
        by_campaign[row["campaign_id"]].update(
            mokugift_rewards=row["rewards"], mokugift_trees=row["trees"]
        )
    for row in (
        sends.values("batch__campaign_id")
        .annotate(rewards=Count("pk"), trees=Sum("mirrored__tree_count"))
        .order_by()
    ):
        by_campaign.setdefault(row["batch__campaign_id"], {})
        by_campaign[row["batch__campaign_id"]].update(
            ours_rewards=row["rewards"], ours_trees=row["trees"] or 0
        )
    names = dict(Campaign.objects.filter(pk__in=by_campaign).values_list("pk", "name"))
    campaigns: list[CampaignTotals] = [
        {
            "campaign_id": pk,
            "campaign": names.get(pk, "?"),
            "mokugift_rewards": data.get("mokugift_rewards"),
            "mokugift_trees": data.get("mokugift_trees"),
            "ours_rewards": data.get("ours_rewards") or 0,
            "ours_trees": data.get("ours_trees") or 0,
        }
        for pk, data in by_campaign.items()
    ]
    campaigns.sort(key=lambda c: c["campaign"])

    senders: list[SenderTotals] = [
        {
            "sender_id": row["batch__created_by_id"],
            "sender": row["batch__created_by__username"] or "(no one: command line or deleted)",
            "rewards": row["rewards"],
            "trees": row["trees"] or 0,
        }
        for row in sends.values("batch__created_by_id", "batch__created_by__username")
        .annotate(rewards=Count("pk"), trees=Sum("mirrored__tree_count"))
        .order_by("-rewards", F("batch__created_by__username").asc(nulls_last=True))
    ]

    absent = list(
        ledger_not_in_mokugift(year=year, campaign_ids=campaign_ids, visible_ids=visible_ids)[
            :LEDGER_LIST_LIMIT
        ]
    )
    return Report(
        year=year,
        campaign_ids=tuple(campaign_ids),
        visible_ids=visible_ids,
        months=[months[m] for m in range(1, 13)],
        by_campaign=campaigns,
        by_sender=senders,
        ledger_not_in_mokugift=absent,
    )


# A sent ledger row that no mirrored reward is linked to, or whose reward Mokugift has
# stopped listing (flagged missing by a sync, and still linked).
_NOT_IN_MOKUGIFT = Q(mirrored__isnull=True) | Q(mirrored__missing_since__isnull=False)


def ledger_not_in_mokugift(
    *, year: int, campaign_ids: tuple[int, ...] = (), visible_ids: tuple[int, ...] | None = None
) -> QuerySet[Send]:
    """Sent ledger rows of the year that no mirrored reward is linked to.

    Every sync links the mirror's rewards to our ledger rows by (campaign, reward ID) as its
    last step, so "not linked" is "not in Mokugift's list as last synced". The link, not a
    lookup by ID, because it is one join on an index (a lookup per ledger row cost three times
    as much at a million mirrored rewards). A row whose ID reconciliation found after the last
    sync shows here until the next one (minutes).
    """
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    sends = Send.objects.filter(
        _NOT_IN_MOKUGIFT, state=Send.State.SENT, sent_at__gte=start, sent_at__lt=end
    )
    scope = _scope(campaign_ids, visible_ids)
    if scope is not None:
        sends = sends.filter(batch__campaign_id__in=scope)
    return (
        sends.select_related("batch__campaign", "batch__created_by")
        .defer("batch__campaign__passcode")
        .order_by("sent_at", "pk")
    )
