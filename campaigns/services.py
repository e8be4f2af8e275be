"""Writes to campaigns. Every change of a campaign or its credentials leaves an audit event."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from campaigns.models import Campaign, CampaignAuditEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Action = CampaignAuditEvent.Action

# The fields a person edits on the campaign form; the passcode has its own door.
EDITABLE_FIELDS = ("name", "campaign_id", "environment", "enabled", "notes")


@transaction.atomic
def campaign_create(
    *,
    actor: User | None,
    name: str,
    campaign_id: str,
    environment: str,
    passcode: str,
    enabled: bool = True,
    notes: str = "",
) -> Campaign:
    campaign = Campaign(
        name=name,
        campaign_id=campaign_id,
        environment=environment,
        passcode=passcode,
        enabled=enabled,
        notes=notes,
        created_by=actor,
    )
    campaign.full_clean()
    campaign.save()
    changes: dict[str, object] = {
        field: [None, getattr(campaign, field)] for field in EDITABLE_FIELDS
    }
    if passcode:
        changes["passcode"] = "set"
    CampaignAuditEvent.objects.create(
        campaign=campaign, actor=actor, action=Action.CREATED, changes=changes
    )
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, actor: User | None, **fields: object) -> Campaign:
    """Change plain fields. Records only what really changed; no change, no event."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable here: {', '.join(sorted(unknown))}")
    # Without the passcode: an admin must be able to disable a campaign whose key is lost.
    before = Campaign.objects.select_for_update().defer("passcode").get(pk=campaign.pk)
    changes = {
        field: [getattr(before, field), value]
        for field, value in fields.items()
        if getattr(before, field) != value
    }
    if not changes:
        return campaign
    for field, value in fields.items():
        setattr(campaign, field, value)
    campaign.full_clean(exclude=["passcode"])
    campaign.save(update_fields=[*changes, "updated_at"])
    if set(changes) == {"enabled"}:
        action = Action.ENABLED if campaign.enabled else Action.DISABLED
    else:
        action = Action.UPDATED
    CampaignAuditEvent.objects.create(
        campaign=campaign, actor=actor, action=action, changes=changes
    )
    return campaign


def campaign_set_enabled(*, campaign: Campaign, actor: User | None, enabled: bool) -> Campaign:
    return campaign_update(campaign=campaign, actor=actor, enabled=enabled)


@transaction.atomic
def campaign_passcode_replace(*, campaign: Campaign, actor: User | None, passcode: str) -> Campaign:
    campaign.passcode = passcode
    campaign.save(update_fields=["passcode", "updated_at"])
    CampaignAuditEvent.objects.create(
        campaign=campaign, actor=actor, action=Action.PASSCODE_REPLACED, changes={"passcode": "set"}
    )
    return campaign


def campaigns_rotate_encryption_keys(*, batch_size: int = 500) -> int:
    """Re-encrypt every stored passcode under the newest key. Returns how many were done.

    Reading a passcode decrypts it with whichever key fits; saving encrypts it with the
    newest. One short transaction per batch, so a large table never holds a long lock.
    """
    done = 0
    last_pk = 0
    while True:
        with transaction.atomic():
            batch = list(
                Campaign.objects.select_for_update()
                .filter(pk__gt=last_pk)
                .exclude(passcode="")
                .order_by("pk")
                .only("pk", "passcode")[:batch_size]
            )
            if not batch:
                return done
            Campaign.objects.bulk_update(batch, ["passcode"])
            CampaignAuditEvent.objects.bulk_create(
                CampaignAuditEvent(campaign=c, action=Action.KEY_ROTATED) for c in batch
            )
        done += len(batch)
        last_pk = batch[-1].pk
