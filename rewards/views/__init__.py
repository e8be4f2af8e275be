"""Views of the rewards app, one module per page family: send, batches, browse, reports."""

from django.contrib.auth.decorators import permission_required, user_passes_test
from django.core.exceptions import PermissionDenied

from campaigns.selectors import APPROVE_PERMISSION

send_rewards_required = permission_required("campaigns.send_rewards", raise_exception=True)
view_reports_required = permission_required("campaigns.view_reports", raise_exception=True)
export_rewards_required = permission_required("campaigns.export_rewards", raise_exception=True)
approve_batches_required = permission_required(APPROVE_PERMISSION, raise_exception=True)


def _sees_batches(user) -> bool:
    # Senders, and approvers (Managers), who must read what they approve.
    if user.has_perm("campaigns.send_rewards") or user.has_perm(APPROVE_PERMISSION):
        return True
    raise PermissionDenied


batches_required = user_passes_test(_sees_batches)
