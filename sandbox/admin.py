from django.contrib import admin

from sandbox.models import SandboxCampaign, SandboxReward


@admin.register(SandboxCampaign)
class SandboxCampaignAdmin(admin.ModelAdmin):
    # The passcode (hashed) is set by `manage.py sandbox_campaign`, never shown.
    exclude = ("passcode_hash",)
    list_display = ("campaign_id", "enabled", "expires", "coins", "fault", "fault_rate")
    list_filter = ("enabled", "fault")
    search_fields = ("campaign_id",)


@admin.register(SandboxReward)
class SandboxRewardAdmin(admin.ModelAdmin):
    list_display = ("remote_id", "campaign", "recipient_email", "recipient_id", "created")
    list_filter = ("emailed",)
    search_fields = ("remote_id", "recipient_email", "recipient_id", "transaction_id")
    list_select_related = ("campaign",)
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
