from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only, for everyone, superusers included: the trail is append-only."""

    list_display = ("at", "kind", "actor_name", "ip_address", "campaign", "batch_pk")
    list_filter = ("kind",)
    search_fields = ("actor_name",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
