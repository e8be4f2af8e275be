from django.contrib import admin

from campaigns.models import Campaign, CampaignAuditEvent


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    # The passcode is changed on the campaign pages, where the change is audited.
    fields = ("name", "campaign_id", "environment", "enabled", "notes", "created_by")
    readonly_fields = ("created_by",)
    list_display = ("name", "campaign_id", "environment", "enabled", "updated_at")
    list_filter = ("environment", "enabled")
    search_fields = ("name", "campaign_id")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("passcode")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    # Deleting a campaign would cascade away its audit history: a campaign is disabled instead.
    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CampaignAuditEvent)
class CampaignAuditEventAdmin(admin.ModelAdmin):
    list_display = ("campaign", "action", "actor", "at")
    list_filter = ("action",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
