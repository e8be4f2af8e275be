"""What every page's menu needs from rewards: the number of batches awaiting your approval."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from rewards.selectors.approvals import approvals_waiting_count


def approvals(request):
    # Lazy: counted only on a page that shows the menu, for a person who may approve.
    return {
        "approvals_waiting": SimpleLazyObject(lambda: approvals_waiting_count(user=request.user))
    }
