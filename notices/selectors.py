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


def notices_unread_count(*, user: User | AnonymousUser) -> int:
    """The bell's number: one count on the partial index of unread notices."""
    if not user.is_authenticated:
        return 0
    return Notice.objects.filter(user_id=user.pk, read_at=None).count()
