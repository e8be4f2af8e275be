"""Template filters and tags of the rewards pages."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from rewards.services.export import utc_text

register = template.Library()


@register.filter
def utc(value: dt.datetime | None) -> str:
    """Dates in columns labelled UTC: the `date` filter would show the pages' TIME_ZONE."""
    return utc_text(value)


_ROW = (
    '<tr data-remote-id="{}"><td class="text-nowrap"><a href="{}{}/">{}</a></td><td>{}</td>'
    '<td>{}</td><td>{}</td><td class="text-end">{}</td>'
    '<td class="text-nowrap">{}</td><td>{}</td><td>{}</td></tr>'
)
_ELSEWHERE = mark_safe(  # noqa: S308 - a constant
    '<span class="badge bg-secondary-subtle text-secondary-emphasis">elsewhere</span>'
)


@register.simple_tag
def reward_rows(rewards: Iterable, detail_prefix: str) -> SafeString:
    """The rows of the rewards table (`rewards.selectors.mirror.rewards_page`), escaped by
    format_html. Written here, not as a template loop: on a 50-row page that loop took about
    a third of the page's time, and the page's target is 50 ms over a million rewards."""
    return format_html_join("\n", _ROW, (_cells(reward, detail_prefix) for reward in rewards))


def _cells(reward, detail_prefix: str) -> tuple:
    send = reward.send
    if send is None:
        name = sender = ""
        source = _ELSEWHERE
    else:
        name = send.name
        sender = send.batch.created_by.get_username() if send.batch.created_by else ""
        source = format_html(
            '<span class="badge bg-success-subtle text-success-emphasis">dashboard</span> '
            "batch #{}",
            send.batch_id,
        )
    missing = ""
    if reward.missing_since:
        missing = format_html(
            '<span class="badge bg-danger-subtle text-danger-emphasis" '
            'title="Mokugift stopped listing it on {} UTC">'
            "no longer listed</span>",
            utc_text(reward.missing_since),
        )
    return (
        reward.remote_id,
        detail_prefix,
        reward.pk,
        utc_text(reward.date),
        reward.campaign.name,
        reward.recipient_email or reward.recipient_id,
        name,
        reward.tree_count,
        source,
        sender,
        missing,
    )


# --- The batch pages ------------------------------------------------------------------------

# A row's or a batch's state as a badge of the UI kit: the "subtle" background with the
# "emphasis" text of the same colour reads at WCAG AA contrast.
_TONES = {
    "waiting": "secondary",
    "sending": "info",
    "sent": "success",
    "failed": "danger",
    "unknown": "warning",
    "cancelled": "secondary",
    "paused": "warning",
    "done": "success",
    "approval": "purple",
    "scheduled": "azure",
    "declined": "danger",
}


@register.filter
def tone(state: str) -> str:
    """The kit's colour name for a state: `bg-{{ s|tone }}-subtle text-{{ s|tone }}-emphasis`."""
    return _TONES.get(state, "secondary")


@register.filter
def state_badge(state: str) -> str:
    """The classes of a state's badge."""
    t = tone(state)
    return f"badge bg-{t}-subtle text-{t}-emphasis"


@register.simple_tag
def batch_outcome(state: str, label: str, failed: int, unknown: int = 0) -> SafeString:
    """The batch's state as a badge that never makes failures look like success:
    "Done, 95 failed" in the warning colour, "Done" in green only when nothing failed."""
    parts = [f"{failed} failed"] if failed else []
    if unknown:
        parts.append(f"{unknown} unknown")
    text = ", ".join([label, *parts])
    t = "warning" if parts else tone(state)
    return format_html(
        '<span class="badge bg-{}-subtle text-{}-emphasis batch-outcome" data-outcome="{}">{}'
        "</span>",
        t,
        t,
        "failures" if failed else state,
        text,
    )


@register.filter
def time_left(seconds: int | None) -> str:
    """About how long a sending batch still needs, in words."""
    if seconds is None:
        return "estimating time left…"
    if seconds <= 0:
        return "almost done"
    if seconds < 60:
        return f"about {seconds} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60} min left"


# --- The sync status of the rewards page ----------------------------------------------------

# How long the status keeps asking after Refresh queued a sync that has not started yet.
SYNC_WAIT_SECONDS = 120


@dataclass(frozen=True)
class SyncLive:
    """What the sync status (`rewards/_sync_status.html`) needs to follow a run by itself."""

    # Poll again: a run is running, or a queued one has not started yet.
    polls: bool
    waiting: bool
    # The status URL the fragment polls, carrying what it follows.
    url: str
    # A run this page followed has ended and changed the mirror: offer to show its rewards.
    changed: bool


@register.simple_tag
def sync_live(
    runs: Iterable,
    campaign_id: object = None,
    month: object = None,
    query: str = "",
    since: object = None,
    follow: object = "",
) -> SyncLive:
    """Follow the latest runs: those running now, those started after Refresh (`since`, a
    Unix time) and those this page saw running before (`follow`, their pks, "12,13").
    Both are absent ("") on the rewards page's first load."""
    now = time.time()
    refreshed = _number(since)
    followed = {int(pk) for pk in str(follow or "").split(",") if pk.strip().isdecimal()}
    started_after_refresh = False
    for run in runs:
        fresh = refreshed is not None and run.started_at.timestamp() >= refreshed - 5
        started_after_refresh = started_after_refresh or fresh
        if fresh or run.outcome == "running":
            followed.add(run.pk)
    running = any(run.outcome == "running" for run in runs)
    waiting = (
        refreshed is not None and not started_after_refresh and now - refreshed < SYNC_WAIT_SECONDS
    )
    changed = not running and any(
        run.pk in followed and run.created + run.changed + run.flagged_missing > 0 for run in runs
    )
    params: dict[str, object] = {}
    if campaign_id:
        params["campaign"] = campaign_id
    if month:
        params["month"] = month
    if query:
        params["next"] = query
    if waiting and refreshed is not None:
        params["since"] = f"{refreshed:.3f}"
    if followed:
        params["follow"] = ",".join(str(pk) for pk in sorted(followed))
    url = reverse("rewards:sync_status") + ("?" + urlencode(params) if params else "")
    return SyncLive(polls=running or waiting, waiting=waiting, url=url, changed=changed)


def _number(value: object) -> float | None:
    try:
        return float(str(value)) if value not in (None, "") else None
    except ValueError:
        return None
