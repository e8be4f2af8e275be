"""The bell's count, asked only by the page that shows the bell (one query)."""

from __future__ import annotations

from django import template

from notices.selectors import notices_unread_count

register = template.Library()


@register.simple_tag(takes_context=True)
def notices_unread(context: template.Context) -> int:
    request = context.get("request")
    if request is None:
        return 0
    return notices_unread_count(user=request.user)
