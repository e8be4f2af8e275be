"""Reading the audit trail: the page's filter, and each event in words."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from audit.models import AuditEvent, Kind

# The areas of the kinds, for the page's filter: a kind's value starts with its area.
AREAS = {
    "account": "Sign-in and accounts",
    "team": "Team",
    "campaign": "Campaigns",
    "batch": "Batches",
    "export": "Exports",
}


@dataclass(frozen=True)
class AuditFilters:
    person: int | None = None
    kind: str = ""  # a kind ("batch.cancelled") or an area ("batch")
    campaign: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None


def audit_events(*, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """The events the filter keeps, newest first, with who and what loaded alongside."""
    events = AuditEvent.objects.select_related("actor", "person", "campaign")
    if filters.person is not None:
        events = events.filter(actor_id=filters.person) | events.filter(person_id=filters.person)
    if filters.kind in AREAS:
        events = events.filter(kind__startswith=filters.kind + ".")
    elif filters.kind:
        events = events.filter(kind=filters.kind)
    if filters.campaign is not None:
        events = events.filter(campaign_id=filters.campaign)
    if filters.date_from is not None:
        events = events.filter(at__date__gte=filters.date_from)
    if filters.date_to is not None:
        events = events.filter(at__date__lte=filters.date_to)
    return events.order_by("-at", "-pk")


def _detail_words(event: AuditEvent) -> str:
    detail: dict[str, Any] = event.detail or {}
    parts = []
    if event.kind == Kind.ROLE_CHANGED and "role" in detail:
        old, new = detail["role"]
        parts.append(f"from {old or 'no role'} to {new}")
    elif event.kind == Kind.ACCESS_CHANGED and "campaigns" in detail:
        old, new = detail["campaigns"]
        parts.append(f"from {_campaigns_words(old)} to {_campaigns_words(new)}")
    elif event.kind == Kind.EXPORT_DOWNLOADED:
        what = detail.get("what", "a file")
        shown = ", ".join(f"{k} {v}" for k, v in (detail.get("filter") or {}).items())
        parts.append(f"{what} as {str(detail.get('format', '')).upper()}")
        parts.append(f"filtered by {shown}" if shown else "unfiltered")
    elif event.kind == Kind.CAMPAIGN_CREATED:
        parts.append(f"ID {event.campaign.campaign_id}" if event.campaign else "")
    else:
        for key, value in detail.items():
            if isinstance(value, list) and len(value) == 2 and key not in ("rows",):
                old, new = (_shown(v) for v in value)
                parts.append(f"{key.replace('_', ' ')} {old} → {new}")
            elif isinstance(value, bool):
                if value:
                    parts.append(key.replace("_", " "))
            elif value not in (None, "", [], {}):
                parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(part for part in parts if part)


def _shown(value: Any) -> str:
    if value in (None, ""):
        return "(none)"
    return f"“{value}”" if isinstance(value, str) else str(value)


def _campaigns_words(value: Any) -> str:
    if value == "all":
        return "all campaigns"
    return ", ".join(value) if value else "no campaign"


def audit_event_words(event: AuditEvent) -> str:
    """ "alice-admin: Batch cancelled, batch #12 of Spring (rows not sent: 40)"."""
    who = event.actor_name or "The system"
    what = event.get_kind_display()
    objects = []
    if event.person is not None and event.person_id != event.actor_id:
        objects.append(event.person.get_username())
    if event.batch_pk is not None:
        objects.append(f"batch #{event.batch_pk}")
    if event.campaign is not None:
        objects.append(event.campaign.name)
    sentence = f"{who}: {what}"
    if objects:
        sentence += " — " + ", ".join(objects)
    words = _detail_words(event)
    return f"{sentence} ({words})" if words else sentence


AUDIT_CSV_HEADER = ("time (UTC)", "kind", "person", "address", "about", "campaign", "batch", "what")


def audit_csv_rows(events: QuerySet[AuditEvent]) -> Any:
    for event in events.iterator(chunk_size=2_000):
        yield (
            event.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            event.kind,
            event.actor_name,
            event.ip_address or "",
            event.person.get_username() if event.person else "",
            event.campaign.name if event.campaign else "",
            event.batch_pk or "",
            audit_event_words(event),
        )
