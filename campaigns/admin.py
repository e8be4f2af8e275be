from django.contrib import admin

from campaigns.models import Campaign, CampaignAccess


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


@admin.register(CampaignAccess)
class CampaignAccessAdmin(admin.ModelAdmin):
    """Who sees which campaigns, as the Team page chooses them. A person without a row has
    every campaign; an admin has every campaign whatever their row says."""

    list_display = ("user", "all_campaigns")
    list_filter = ("all_campaigns",)
    search_fields = ("user__username", "user__email")
    filter_horizontal = ("campaigns",)
    raw_id_fields = ("user",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "campaigns":
            kwargs["queryset"] = Campaign.objects.defer("passcode")
        return super().formfield_for_manytomany(db_field, request, **kwargs)
