"""What waits for a second person."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from campaigns.selectors import APPROVE_PERMISSION, visible_only
from rewards.models import Batch

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def batches_awaiting_approval(*, user: User | AnonymousUser) -> QuerySet[Batch]:
    """The batches awaiting approval on the campaigns this person may see, oldest first (the
    first to wait is the first to be seen). Their own are among them, to follow, not to
    approve."""
    batches = (
        Batch.objects.filter(state=Batch.State.AWAITING_APPROVAL)
        .select_related("campaign", "created_by")
        .defer("campaign__passcode")
        .order_by("created_at", "pk")
    )
    return visible_only(batches, user=user)


def approvals_waiting_count(*, user: User | AnonymousUser) -> int:
    """How many batches this person could approve now (the menu's number): not their own."""
    if not user.is_authenticated or not user.has_perm(APPROVE_PERMISSION):
        return 0
    return batches_awaiting_approval(user=user).exclude(created_by_id=user.pk).count()
