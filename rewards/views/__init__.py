"""Views of the rewards app, one module per page family: send, batches, browse, reports."""

from django.contrib.auth.decorators import permission_required

send_rewards_required = permission_required("campaigns.send_rewards", raise_exception=True)
view_reports_required = permission_required("campaigns.view_reports", raise_exception=True)
export_rewards_required = permission_required("campaigns.export_rewards", raise_exception=True)
