"""Reads of a person's notices: the list page and the bell's count."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from notices.models import Notice

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def notices_of(*, user: User) -> QuerySet[Notice]:
    """A person's notices, newest first."""
    return Notice.objects.filter(user=user).order_by("-created_at", "-pk")


# The bell counts up to here and then says "9+": past a handful, the number tells nothing more.
BELL_MAX = 9


def notices_unread_count(*, user: User | AnonymousUser) -> int:
    """The bell's number, at most BELL_MAX + 1: one query on the partial index of unread
    notices, reading a few keys rather than counting them all."""
    if not user.is_authenticated:
        return 0
    unread = Notice.objects.filter(user_id=user.pk, read_at=None).order_by()
    return len(unread.values_list("pk", flat=True)[: BELL_MAX + 1])
