"""Reads about API keys: a person's own, for their page and the admin's page of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from api.models import ApiKey

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def api_keys_of(*, user: User) -> QuerySet[ApiKey]:
    """The person's keys, newest first, dead ones included (the page says which)."""
    return ApiKey.objects.filter(user=user).order_by("-created_at", "-pk")
