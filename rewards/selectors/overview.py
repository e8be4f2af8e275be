"""The home page's overview: how we are doing (month figures, a twelve-month chart), what needs
someone (paused batches, rows of unknown outcome, batches with failures, campaigns whose check
or sync failed) and the recent batches. Local tables only, in a handful of queries, because the
page answers in under 50 ms over a million mirrored rewards (tests/bench/bench_mirror.py).

Which parts a person gets follows from the role (`OverviewParts.for_user`): sending (Marketing,
Admin), reports (Manager, Admin), managing campaigns (Admin). Every query takes the campaigns the
person may see (`campaign_ids`, None: all), from campaigns.selectors.campaign_ids_visible_to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce, ExtractMonth, ExtractYear
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from campaigns.models import Campaign
from campaigns.selectors import campaign_ids_visible_to
from rewards.models import Batch, LedgerMonth, MonthlySummary, Send, SyncRun

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Person = User | AnonymousUser

# A batch whose rows failed needs someone for this long after it started (retry, or let go).
FAILED_BATCH_DAYS = 30
# The longest list of each kind on the page; the pages behind the links have them all.
ATTENTION_LIMIT = 10
RECENT_LIMIT = 8
MONTHS = 12
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class OverviewParts:
    sending: bool = False  # our sends, batches and their trouble
    reports: bool = False  # Mokugift's figures, sync failures
    campaigns: bool = False  # connection checks

    @classmethod
    def for_user(cls, user: Person) -> OverviewParts:
        return cls(
            sending=user.has_perm("campaigns.send_rewards"),
            reports=user.has_perm("campaigns.view_reports"),
            campaigns=user.has_perm("campaigns.manage_campaigns"),
        )

    @property
    def any(self) -> bool:
        return self.sending or self.reports or self.campaigns


@dataclass(slots=True)
class MonthFigures:
    year: int
    month: int
    mokugift_rewards: int | None = None  # None: no sync has read the month
    mokugift_trees: int | None = None
    sent: int = 0  # rewards sent from here (the ledger's sent rows, by the month sent)
    trees: int = 0  # their trees, as the mirror reports them
    sent_by_you: int = 0
    # Rows now failed, of the batches started in the month.
    failed: int = 0

    def add_ours(self, *, sent: int, trees: int, failed: int, by_you: bool) -> None:
        """Count a cell of our ledger (one sender's) into the month."""
        self.sent += sent
        self.trees += trees
        self.failed += failed
        if by_you:
            self.sent_by_you += sent

    @property
    def label(self) -> str:
        return f"{_MONTH_NAMES[self.month - 1]} {self.year}"

    @property
    def short_label(self) -> str:
        return f"{_MONTH_NAMES[self.month - 1]} {self.year % 100:02d}"


@dataclass(slots=True)
class AttentionBatch:
    pk: int
    campaign: str
    state: str
    paused_reason: str
    created_at: dt.datetime
    unknown: int
    oldest_unknown_at: dt.datetime | None
    failed: int


@dataclass(slots=True)
class AttentionCampaign:
    pk: int
    name: str
    check_failed: bool
    check_message: str
    check_at: dt.datetime | None
    sync_failed: bool
    sync_error: str
    sync_at: dt.datetime | None


@dataclass(slots=True)
class RecentBatch:
    pk: int
    campaign: str
    source: str
    filename: str
    state: str
    created_at: dt.datetime
    created_by: str
    mine: bool
    failed: int
    unknown: int

    @property
    def summary(self) -> str:
        """The batch's state in words, its failures never hidden: "Done, 95 failed"."""
        words = _STATE_WORDS.get(self.state, self.state)
        if self.failed:
            words += f", {self.failed:,} failed"
        if self.unknown:
            words += f", {self.unknown:,} unknown"
        return words

    @property
    def badge(self) -> str:
        if self.state == Batch.State.PAUSED or self.failed or self.unknown:
            return "bg-warning-lt"
        return _STATE_BADGES.get(self.state, "bg-secondary-lt")


_STATE_WORDS: dict[str, str] = {str(value): str(label) for value, label in Batch.State.choices}
_STATE_BADGES: dict[str, str] = {
    Batch.State.DONE.value: "bg-success-lt",
    Batch.State.SENDING.value: "bg-blue-lt",
    Batch.State.CANCELLED.value: "bg-secondary-lt",
    Batch.State.AWAITING_APPROVAL.value: "bg-purple-lt",
    Batch.State.SCHEDULED.value: "bg-azure-lt",
    Batch.State.DECLINED.value: "bg-red-lt",
}


@dataclass
class Overview:
    parts: OverviewParts
    months: list[MonthFigures]  # oldest first, this month last
    paused: list[AttentionBatch] = field(default_factory=list)
    unknown: list[AttentionBatch] = field(default_factory=list)
    with_failures: list[AttentionBatch] = field(default_factory=list)
    campaigns: list[AttentionCampaign] = field(default_factory=list)
    paid_twice: int = 0
    recent: list[RecentBatch] = field(default_factory=list)

    @property
    def this_month(self) -> MonthFigures:
        return self.months[-1]

    @property
    def last_month(self) -> MonthFigures:
        return self.months[-2]

    @property
    def needs_attention(self) -> bool:
        return bool(
            self.paused or self.unknown or self.with_failures or self.campaigns or self.paid_twice
        )

    def chart_data(self) -> dict[str, list[str] | list[int | None] | list[int]]:
        months = self.months
        data: dict[str, list[str] | list[int | None] | list[int]] = {
            "labels": [m.short_label for m in months]
        }
        if self.parts.reports:
            data["mokugift_rewards"] = [m.mokugift_rewards for m in months]
            data["mokugift_trees"] = [m.mokugift_trees for m in months]
        data["sent"] = [m.sent for m in months]
        data["failed"] = [m.failed for m in months] if self.parts.sending else []
        return data


class _Default:
    pass


_DEFAULT = _Default()


def overview_campaign_ids(*, user: Person) -> tuple[int, ...] | None:
    """The campaigns a person's overview counts (None: all): those they may see."""
    return campaign_ids_visible_to(user=user)


def _month_start(year: int, month: int) -> dt.datetime:
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def _months_back(now: dt.datetime, count: int) -> list[tuple[int, int]]:
    """The last `count` (year, month) pairs, oldest first, this month last (UTC)."""
    index = now.year * 12 + now.month - 1
    return [divmod(i, 12) for i in range(index - count + 1, index + 1)]


def overview_for(
    *,
    user: Person,
    parts: OverviewParts | None = None,
    now: dt.datetime | None = None,
    campaign_ids: tuple[int, ...] | None | _Default = _DEFAULT,
) -> Overview:
    """A person's overview, in at most six queries (fewer for the roles that see less).
    `campaign_ids` narrows it to those campaigns (default: the person's, overview_campaign_ids)."""
    parts = parts or OverviewParts.for_user(user)
    now = (now or timezone.now()).astimezone(dt.UTC)
    pairs = [(y, m + 1) for y, m in _months_back(now, MONTHS)]
    months = {pair: MonthFigures(year=pair[0], month=pair[1]) for pair in pairs}
    overview = Overview(parts=parts, months=list(months.values()))
    if not parts.any:
        return overview
    if isinstance(campaign_ids, _Default):
        campaign_ids = overview_campaign_ids(user=user)
    start = _month_start(*pairs[0])
    if parts.sending or parts.reports:
        _figures(months, start=start, user=user, parts=parts, campaign_ids=campaign_ids)
    if parts.sending:
        _attention_batches(overview, now=now, campaign_ids=campaign_ids)
        overview.recent = _recent_batches(user=user, campaign_ids=campaign_ids)
    if parts.reports or parts.campaigns:
        overview.campaigns = _attention_campaigns(parts=parts, campaign_ids=campaign_ids)
    if parts.sending or parts.reports:
        overview.paid_twice = _paid_twice(campaign_ids=campaign_ids)
    return overview


def _figures(
    months: dict[tuple[int, int], MonthFigures],
    *,
    start: dt.datetime,
    user: Person,
    parts: OverviewParts,
    campaign_ids: tuple[int, ...] | None,
) -> None:
    # Mokugift's side, the month summaries the syncs keep (a row per campaign and month), and
    # ours, the small aggregate of the ledger (LedgerMonth, rewritten at each batch's end and
    # after each sync): one query, both tables small.
    first = next(iter(months))
    window = "(t.year > %s OR (t.year = %s AND t.month >= %s))"
    where, ids = _campaigns_sql("t.campaign_id", campaign_ids)
    sql = (
        f"SELECT 0, t.year, t.month, t.sender_id, t.sent, t.trees, t.failed, t.refreshed_at"  # noqa: S608 - names are ours
        f" FROM {_L} t WHERE {window}{where}"
    )
    params: list[Any] = [first[0], first[0], first[1], *ids]
    if parts.reports:
        sql += (
            f" UNION ALL SELECT 1, t.year, t.month, NULL, SUM(t.reward_count), SUM(t.tree_count),"  # noqa: S608 - names are ours
            f" 0, NULL FROM {_M} t WHERE {window}{where} GROUP BY t.year, t.month"
        )
        params += [first[0], first[0], first[1], *ids]
    refreshed_at = None
    counted_here = False
    for kind, year, month, sender_id, a, b, failed, at in _rows(sql, params):
        figures = months.get((year, month))
        if kind == 1:
            if figures is not None:
                figures.mokugift_rewards, figures.mokugift_trees = int(a), int(b)
            continue
        counted_here = True
        refreshed_at = refreshed_at or _moment(at)
        if figures is not None:
            figures.add_ours(sent=a, trees=b, failed=failed, by_you=sender_id == user.pk)
    if not counted_here:
        # Never refreshed, or nothing sent nor failed in the window when it was: the ledger
        # itself (small then), as the refresh would count it.
        for (_, sender_id, year, month), (sent, trees, failed) in ledger_cells(
            start=start, end=None, campaign_ids=campaign_ids
        ).items():
            figures = months.get((year, month))
            if figures is not None:
                figures.add_ours(sent=sent, trees=trees, failed=failed, by_you=sender_id == user.pk)
        return
    if refreshed_at is not None:
        _sent_since(months, since=refreshed_at, user=user, campaign_ids=campaign_ids)


def _sent_since(
    months: dict[tuple[int, int], MonthFigures],
    *,
    since: dt.datetime,
    user: Person,
    campaign_ids: tuple[int, ...] | None,
) -> None:
    """Rows sent after the aggregate was written: a short range of the ledger's sent_at index,
    counted per month (the months from the refresh's to now's, one or two). No trees: a
    reward's trees come from the mirror, and the sync that links it refreshes the aggregate."""
    since = since.astimezone(dt.UTC)
    keys = [key for key in months if _month_start(*key) >= _month_start(since.year, since.month)]
    if not keys:
        return
    counts, params = [], []
    for year, month in keys:
        low = _month_start(year, month)
        high = _month_start(year + month // 12, month % 12 + 1)
        counts.append("COUNT(CASE WHEN s.sent_at >= %s AND s.sent_at < %s THEN 1 END)")
        counts.append(
            "COUNT(CASE WHEN s.sent_at >= %s AND s.sent_at < %s AND b.created_by_id = %s"
            " THEN 1 END)"
        )
        params += [low, high, low, high, user.pk]
    where, ids = _campaigns_sql("b.campaign_id", campaign_ids)
    sql = (
        f"SELECT {', '.join(counts)} FROM {_S} s INNER JOIN {_B} b ON b.id = s.batch_id"  # noqa: S608 - names are ours
        f" WHERE s.state = %s AND s.sent_at > %s{where}"
    )
    (row,) = _rows(sql, [*params, Send.State.SENT.value, since, *ids])
    for index, key in enumerate(keys):
        months[key].sent += row[2 * index]
        months[key].sent_by_you += row[2 * index + 1]


def ledger_cells(
    *, start: dt.datetime, end: dt.datetime | None, campaign_ids: tuple[int, ...] | None = None
) -> dict[tuple[int, int | None, int, int], list[int]]:
    """Our ledger by (campaign, sender, year, month): [sent, trees, failed]. Sent rows by the
    month they were sent (from `start`, up to `end` included), their trees from the mirrored
    reward each is linked to; failed rows by the month their batch started (a failed row has
    no time of its own that an index keeps, and its batch's is near: batches take minutes; a
    row retried and sent leaves this count). Two grouped queries over the ledger: for the
    refresh of LedgerMonth, not for a page (but for a ledger never refreshed)."""
    sent = Send.objects.filter(state=Send.State.SENT, sent_at__gte=start)
    failed = Send.objects.filter(state=Send.State.FAILED, batch__created_at__gte=start)
    if end is not None:
        sent = sent.filter(sent_at__lte=end)
        failed = failed.filter(batch__created_at__lte=end)
    if campaign_ids is not None:
        sent = sent.filter(batch__campaign_id__in=campaign_ids)
        failed = failed.filter(batch__campaign_id__in=campaign_ids)
    cells: dict[tuple[int, int | None, int, int], list[int]] = {}
    for campaign_id, sender_id, year, month, count, trees in (
        sent.annotate(
            y=ExtractYear("sent_at", tzinfo=dt.UTC), m=ExtractMonth("sent_at", tzinfo=dt.UTC)
        )
        .values_list("batch__campaign_id", "batch__created_by_id", "y", "m")
        .annotate(n=Count("pk"), trees=Coalesce(Sum("mirrored__tree_count"), 0))
        .order_by()
    ):
        cells.setdefault((campaign_id, sender_id, year, month), [0, 0, 0])[:2] = [count, trees]
    for campaign_id, sender_id, year, month, count in (
        failed.annotate(
            y=ExtractYear("batch__created_at", tzinfo=dt.UTC),
            m=ExtractMonth("batch__created_at", tzinfo=dt.UTC),
        )
        .values_list("batch__campaign_id", "batch__created_by_id", "y", "m")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        cells.setdefault((campaign_id, sender_id, year, month), [0, 0, 0])[2] = count
    return cells


# --- The lists: plain SQL -------------------------------------------------------------------
# Building these queries with the ORM (subqueries, CASE, joins) cost eight times what running
# them does (33 ms against 4 on the benchmark's machine), for a page whose whole budget is
# 50 ms. So they are written once, here, in SQL that PostgreSQL and SQLite both read; the
# figures above stay with the ORM (their month expressions differ between the two).

_B = Batch._meta.db_table
_S = Send._meta.db_table
_C = Campaign._meta.db_table
_U = get_user_model()._meta.db_table
_R = SyncRun._meta.db_table
_L = LedgerMonth._meta.db_table
_M = MonthlySummary._meta.db_table


def _moment(value: dt.datetime | str | None) -> dt.datetime | None:
    """A datetime from a raw cursor: PostgreSQL's are aware, SQLite's are text in UTC."""
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = parse_datetime(value)
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _campaigns_sql(column: str, campaign_ids: tuple[int, ...] | None) -> tuple[str, list[int]]:
    if campaign_ids is None:
        return "", []
    if not campaign_ids:
        return " AND 1 = 0", []
    return f" AND {column} IN ({', '.join(['%s'] * len(campaign_ids))})", list(campaign_ids)


def _rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


_COUNT = f"SELECT COUNT(*) FROM {_S} s WHERE s.batch_id = b.id AND s.state = %s"  # noqa: S608 - names are ours


def _attention_batches(
    overview: Overview, *, now: dt.datetime, campaign_ids: tuple[int, ...] | None
) -> None:
    """Paused batches, batches with rows of unknown outcome, recent batches with failed rows:
    one query, each batch once, with its counts (over the (batch, state, row) index, which
    reads only that state's entries: cheap for the few failed or unknown rows of a big batch).
    The unknown rows are found through their partial index (send_in_flight); the failed only
    among the batches of the last FAILED_BATCH_DAYS."""
    unknown, failed = Send.State.UNKNOWN.value, Send.State.FAILED.value
    where, ids = _campaigns_sql("b.campaign_id", campaign_ids)
    sql = (
        f"SELECT b.id, c.name, b.state, b.paused_reason, b.created_at,"  # noqa: S608 - names are ours
        f" ({_COUNT}) AS unknown,"
        f" (SELECT MIN(s.attempt_started_at) FROM {_S} s"
        f"   WHERE s.batch_id = b.id AND s.state = %s) AS oldest_unknown_at,"
        f" ({_COUNT}) AS failed"
        f" FROM {_B} b INNER JOIN {_C} c ON c.id = b.campaign_id"
        f" WHERE (b.state = %s"
        f"   OR b.id IN (SELECT s.batch_id FROM {_S} s WHERE s.state = %s)"
        f"   OR (b.created_at >= %s AND EXISTS ({_COUNT.replace('COUNT(*)', '1')})))"
        f"{where}"
        f" ORDER BY CASE WHEN b.state = %s THEN 0 ELSE 1 END, b.created_at DESC, b.id DESC"
        f" LIMIT %s"
    )
    paused = Batch.State.PAUSED.value
    params: list[Any] = [unknown, unknown, failed, paused, unknown]
    params += [now - dt.timedelta(days=FAILED_BATCH_DAYS), failed, *ids, paused]
    params.append(3 * ATTENTION_LIMIT)
    for pk, campaign, state, reason, created_at, n_unknown, oldest, n_failed in _rows(sql, params):
        batch = AttentionBatch(
            pk=pk,
            campaign=campaign,
            state=state,
            paused_reason=reason,
            created_at=_moment(created_at) or now,
            unknown=n_unknown,
            oldest_unknown_at=_moment(oldest),
            failed=n_failed,
        )
        if batch.state == Batch.State.PAUSED:
            target = overview.paused
        elif batch.unknown:
            target = overview.unknown
        elif batch.failed:
            target = overview.with_failures
        else:
            continue
        if len(target) < ATTENTION_LIMIT:
            target.append(batch)
    # Oldest unknown rows first: they have waited longest for a decision.
    overview.unknown.sort(key=lambda b: (b.oldest_unknown_at or b.created_at, b.pk))


def _recent_batches(*, user: Person, campaign_ids: tuple[int, ...] | None) -> list[RecentBatch]:
    """The latest batches, the person's own first, with their failed and unknown rows."""
    where, ids = _campaigns_sql("b.campaign_id", campaign_ids)
    sql = (
        f"SELECT b.id, c.name, b.source, b.filename, b.state, b.created_at, u.username,"  # noqa: S608 - names are ours
        f" CASE WHEN b.created_by_id = %s THEN 1 ELSE 0 END AS mine,"
        f" ({_COUNT}) AS failed, ({_COUNT}) AS unknown"
        f" FROM {_B} b INNER JOIN {_C} c ON c.id = b.campaign_id"
        f" LEFT OUTER JOIN {_U} u ON u.id = b.created_by_id"
        f" WHERE 1 = 1{where}"
        f" ORDER BY mine DESC, b.created_at DESC, b.id DESC LIMIT %s"
    )
    params: list[Any] = [
        user.pk,
        Send.State.FAILED.value,
        Send.State.UNKNOWN.value,
        *ids,
        RECENT_LIMIT,
    ]
    return [
        RecentBatch(
            pk=pk,
            campaign=campaign,
            source=source,
            filename=filename,
            state=state,
            created_at=_moment(created_at) or timezone.now(),
            created_by=username or "",
            mine=bool(mine),
            failed=failed,
            unknown=unknown,
        )
        for pk, campaign, source, filename, state, created_at, username, mine, failed, unknown in (
            _rows(sql, params)
        )
    ]


def _attention_campaigns(
    *, parts: OverviewParts, campaign_ids: tuple[int, ...] | None
) -> list[AttentionCampaign]:
    """Enabled campaigns whose last connection check failed (for those who manage campaigns)
    or whose last sync failed (for those who read reports): one query, the latest finished
    run of each campaign."""
    latest = (
        f"(SELECT r.id FROM {_R} r WHERE r.campaign_id = c.id AND r.outcome IN (%s, %s)"  # noqa: S608 - names are ours
        f" ORDER BY r.started_at DESC, r.id DESC LIMIT 1)"
    )
    trouble = []
    if parts.campaigns:
        trouble.append("c.last_check_ok = %s")
    if parts.reports:
        trouble.append("run.outcome = %s")
    where, ids = _campaigns_sql("c.id", campaign_ids)
    sql = (
        f"SELECT c.id, c.name, c.last_check_ok, c.last_check_message, c.last_check_at,"  # noqa: S608 - names are ours
        f" run.outcome, run.error, run.finished_at"
        f" FROM {_C} c LEFT OUTER JOIN {_R} run ON run.id = {latest}"
        f" WHERE c.enabled = %s AND ({' OR '.join(trouble)}){where}"
        f" ORDER BY c.name, c.id LIMIT %s"
    )
    params: list[Any] = [SyncRun.Outcome.SUCCEEDED.value, SyncRun.Outcome.FAILED.value, True]
    if parts.campaigns:
        params.append(False)
    if parts.reports:
        params.append(SyncRun.Outcome.FAILED.value)
    params += [*ids, ATTENTION_LIMIT]
    result = []
    for pk, name, check_ok, message, check_at, outcome, error, sync_at in _rows(sql, params):
        check_failed = parts.campaigns and check_ok is not None and not check_ok
        sync_failed = parts.reports and outcome == SyncRun.Outcome.FAILED
        result.append(
            AttentionCampaign(
                pk=pk,
                name=name,
                check_failed=check_failed,
                check_message=message if check_failed else "",
                check_at=_moment(check_at) if check_failed else None,
                sync_failed=sync_failed,
                sync_error=error if sync_failed else "",
                sync_at=_moment(sync_at) if sync_failed else None,
            )
        )
    return result


def _paid_twice(*, campaign_ids: tuple[int, ...] | None) -> int:
    where, ids = _campaigns_sql("b.campaign_id", campaign_ids)
    join = f" INNER JOIN {_B} b ON b.id = s.batch_id" if where else ""
    sql = f"SELECT COUNT(*) FROM {_S} s{join} WHERE s.paid_twice_at IS NOT NULL{where}"  # noqa: S608 - names are ours
    return int(_rows(sql, ids)[0][0])
