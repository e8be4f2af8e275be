from django.urls import path

from rewards.views import approvals, batches, browse, reports, send

app_name = "rewards"
urlpatterns = [
    # Sending (Marketing)
    path("send/", send.send, name="send"),
    path("send/one/", send.send_one, name="send_one"),
    path("send/upload/", send.send_upload, name="send_upload"),
    path("send/upload/<slug:token>/", send.send_preview, name="send_preview"),
    path("send/upload/<slug:token>/problems.csv", send.send_problems_csv, name="send_problems_csv"),
    path("send/upload/<slug:token>/read/", send.send_reread, name="send_reread"),
    path("send/template/<slug:mode>.csv", send.send_template, name="send_template"),
    path("send/template/<slug:mode>.xlsx", send.send_template_xlsx, name="send_template_xlsx"),
    path("batches/", batches.batch_list, name="batch_list"),
    path("batches/<int:pk>/", batches.batch_detail, name="batch_detail"),
    path("batches/<int:pk>/status/", batches.batch_status, name="batch_status"),
    path("batches/<int:pk>/results.csv", batches.batch_results_file, name="batch_results_csv"),
    path("batches/<int:pk>/cancel/", batches.batch_cancel, name="batch_cancel"),
    path("batches/<int:pk>/resume/", batches.batch_resume, name="batch_resume"),
    path("batches/<int:pk>/retry-failed/", batches.batch_retry_failed, name="batch_retry_failed"),
    path(
        "batches/<int:pk>/unknown/check/", batches.batch_unknown_check, name="batch_unknown_check"
    ),
    path(
        "batches/<int:pk>/unknown/decide/",
        batches.batch_unknown_decide,
        name="batch_unknown_decide",
    ),
    path("batches/approvals/", approvals.approval_list, name="approval_list"),
    path("batches/<int:pk>/approve/", approvals.batch_approve, name="batch_approve"),
    path("batches/<int:pk>/decline/", approvals.batch_decline, name="batch_decline"),
    path("batches/<int:pk>/reschedule/", approvals.batch_reschedule, name="batch_reschedule"),
    path("batches/paid-twice/", batches.paid_twice_list, name="paid_twice"),
    # Browsing, reports and export (Manager)
    path("", browse.reward_list, name="list"),
    path("rewards.csv", browse.reward_list_csv, name="list_csv"),
    path("reward/<int:pk>/", browse.reward_detail, name="reward_detail"),
    path("refresh/", browse.sync_refresh, name="sync_refresh"),
    path("sync-status/", browse.sync_status, name="sync_status"),
    path("reports/", reports.report, name="report"),
    path("reports/report.csv", reports.report_csv, name="report_csv"),
    path("reports/report.xlsx", reports.report_xlsx, name="report_xlsx"),
]
