"""Template filters of the rewards pages."""

from __future__ import annotations

import datetime as dt

from django import template

register = template.Library()


@register.filter
def utc(value: dt.datetime | None) -> str:
    """'YYYY-MM-DD HH:MM:SS' in UTC, as Mokugift dates rewards (the `date` filter would show
    the pages' TIME_ZONE, and costs several times as much on a 50-row page)."""
    if value is None:
        return ""
    return value.astimezone(dt.UTC).isoformat(" ", "seconds")[:19]
