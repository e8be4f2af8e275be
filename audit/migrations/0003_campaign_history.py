"""The campaign changes recorded before the audit trail existed, copied into it (only INSERTs:
the trail refuses UPDATE and DELETE). Each change keeps its time, person and campaign; the
passcode shows only as "credential_replaced", as new events do."""

from django.db import migrations

KINDS = {
    "created": "campaign.created",
    "updated": "campaign.updated",
    "passcode_replaced": "campaign.passcode_replaced",
    "enabled": "campaign.enabled",
    "disabled": "campaign.disabled",
    "key_rotated": "campaign.key_rotated",
    "checked": "campaign.checked",
}


def copy(apps, schema_editor):
    History = apps.get_model("campaigns", "CampaignAuditEvent")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    batch = []
    for old in History.objects.select_related("actor").order_by("pk").iterator():
        detail = {key: value for key, value in (old.changes or {}).items() if key != "passcode"}
        if "passcode" in (old.changes or {}):
            detail["credential_replaced"] = True
        batch.append(
            AuditEvent(
                at=old.at,
                kind=KINDS.get(old.action, "campaign.updated"),
                actor=old.actor,
                actor_name=old.actor.username if old.actor else "",
                campaign_id=old.campaign_id,
                detail=detail,
            )
        )
        if len(batch) >= 1000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only"), ("campaigns", "0005_campaign_access")]
    operations = [migrations.RunPython(copy, migrations.RunPython.noop)]
