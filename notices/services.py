"""Telling people: a notice is its own task, queued after the commit of what it tells, so that
sending one never delays or fails a send.

`notice_enqueue` is called by the sending and the spending controls inside their
transactions; it only registers a robust on-commit callback that publishes `notices.deliver`
through `rewards.services.enqueue.task_publish` (a broker that is down is logged, not raised).
The worker then runs `notices_deliver`: it decides who is told, writes a `Notice` per person
and mails it. A mail server that is down leaves the notice on the page, unmailed.

The rewards modules import this one at their top, so what this one needs of them is
imported inside the functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from campaigns.selectors import ADMIN_PERMISSION, APPROVE_PERMISSION
from notices.models import Kind, Notice

if TYPE_CHECKING:
    from campaigns.models import Campaign
    from rewards.models import Batch

logger = logging.getLogger(__name__)

# Kinds told to the batch's creator alone.
_TO_CREATOR = (Kind.BATCH_APPROVED, Kind.BATCH_DECLINED, Kind.BATCH_FINISHED, Kind.BATCH_PAUSED)
_BUDGET = (Kind.BUDGET_80, Kind.BUDGET_100)


def notice_enqueue(
    kind: str, *, batch_pk: int | None = None, campaign_pk: int | None = None
) -> None:
    """Tell the people concerned about `kind` (notices.models.Kind) once the current
    transaction commits. Robust: whatever goes wrong in publishing is logged by Django and
    never reaches the send that called this, nor stops its other on-commit work."""
    from notices.tasks import notices_deliver
    from rewards.services.enqueue import task_publish

    if kind not in Kind.values:
        # A bug to fix, loudly in the log; but a notice never fails the send that tells it.
        logger.error("no kind of notice is called %r: nobody is told", kind)
        return
    transaction.on_commit(
        partial(task_publish, notices_deliver, args=[kind, batch_pk or 0, campaign_pk or 0]),
        robust=True,
    )


# --- Who is told ----------------------------------------------------------------------------


def _holders_of(permission: str) -> list[User]:
    """Active people who hold a permission (through a group, directly, or as superusers).
    The query narrows the team down; `has_perm` has the last word."""
    app_label, codename = permission.split(".")
    by_perm = Q(
        groups__permissions__codename=codename,
        groups__permissions__content_type__app_label=app_label,
    ) | Q(
        user_permissions__codename=codename,
        user_permissions__content_type__app_label=app_label,
    )
    candidates = User.objects.filter(Q(is_superuser=True) | by_perm, is_active=True).distinct()
    return [person for person in candidates.order_by("pk") if person.has_perm(permission)]


def _admins() -> list[User]:
    return _holders_of(ADMIN_PERMISSION)


def _creator(batch: Batch) -> list[User]:
    person = batch.created_by
    return [person] if person is not None and person.is_active else []


def notice_recipients(*, kind: str, batch: Batch | None, campaign: Campaign | None) -> list[User]:
    """Who is told about `kind`, before their own choices (Profile.notices_off) are read."""
    from campaigns.selectors import campaign_visible_to

    people: list[User] = []
    if kind == Kind.APPROVAL_NEEDED and batch is not None:
        people = [
            person
            for person in _holders_of(APPROVE_PERMISSION)
            if person.pk != batch.created_by_id
            and campaign_visible_to(user=person, campaign_pk=batch.campaign_id)
        ]
    elif kind in _TO_CREATOR and batch is not None:
        people = _creator(batch)
    elif kind in _BUDGET and campaign is not None:
        people = _admins()
    elif kind == Kind.PAID_TWICE and batch is not None:
        people = _creator(batch) + [p for p in _admins() if p.pk != batch.created_by_id]
    return people


def _turned_off(*, kind: str, people: list[User]) -> set[int]:
    from accounts.models import Profile

    return {
        user_pk
        for user_pk, off in Profile.objects.filter(user__in=people).values_list(
            "user_id", "notices_off"
        )
        if kind in (off or [])
    }


# --- What they are told ---------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    title: str
    body: str
    url: str


def _batch_name(batch: Batch) -> str:
    return f"Batch {batch.pk} on {batch.campaign.name}"


def _rewards(n: int) -> str:
    return f"{n} reward{'' if n == 1 else 's'}"


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def notice_words(*, kind: str, batch: Batch | None, campaign: Campaign | None) -> Words:
    """The title, body and link of a notice, in plain words with the numbers."""
    from rewards.selectors.sending import batch_counts, batch_failure_reasons, sends_paid_twice
    from rewards.services.controls import budget_month_of, budget_state

    if kind in _BUDGET:
        assert campaign is not None
        # The month the batch that crossed it reserved in (a scheduled one: a later month).
        month = batch.budget_month if batch is not None else None
        at = datetime(month.year, month.month, 1, tzinfo=UTC) if month else None
        state = budget_state(campaign=campaign, at=at)
        share = "80 %" if kind == Kind.BUDGET_80 else "all"
        current = state.month == budget_month_of(timezone.now())
        if current:
            body = (
                f"{state.used} of {state.limit} used this month ({state.percent} %); "
                f"{state.left} left until the month ends (UTC)."
                + (" New batches on it are refused until then." if not state.left else "")
            )
        else:
            body = (
                f"{state.used} of {state.limit} used in {state.month:%B %Y} ({state.percent} %),"
                f" by batches scheduled for it; {state.left} left then."
            )
        return Words(
            title=f"{campaign.name} used {share} of its monthly budget",
            body=body,
            url=reverse("campaigns:detail", args=[campaign.pk]),
        )
    assert batch is not None
    url = reverse("rewards:batch_detail", args=[batch.pk])
    name = _batch_name(batch)
    counts = batch_counts(batch=batch.pk)
    total = sum(counts.values())
    maker = batch.created_by.get_username() if batch.created_by else "The command line"
    decider = batch.decided_by.get_username() if batch.decided_by else "Someone"
    if kind == Kind.APPROVAL_NEEDED:
        when = f" at {_when(batch.send_at)}" if batch.send_at else " as soon as it is approved"
        return Words(
            title=f"{name} awaits your approval",
            body=(
                f"{maker} made a batch of {_rewards(total)} on {batch.campaign.name}. "
                f"It needs a second person's approval; it would go out{when}. "
                "Approve or decline it on its page."
            ),
            url=url,
        )
    if kind == Kind.BATCH_APPROVED:
        if batch.state == batch.State.SCHEDULED and batch.send_at:
            going = f"It goes out at {_when(batch.send_at)}."
        else:
            going = "It is sending now."
        return Words(
            title=f"Your batch {batch.pk} on {batch.campaign.name} was approved",
            body=f"{decider} approved your batch of {_rewards(total)}. {going}",
            url=url,
        )
    if kind == Kind.BATCH_DECLINED:
        return Words(
            title=f"Your batch {batch.pk} on {batch.campaign.name} was declined",
            body=(
                f"{decider} declined your batch of {_rewards(total)}: "
                f"{batch.decline_reason or 'no reason given'}. None of it was sent."
            ),
            url=url,
        )
    if kind == Kind.BATCH_FINISHED:
        body = (
            f"Of {_rewards(total)}: {counts['sent']} sent, {counts['failed']} failed, "
            f"{counts['unknown']} unknown"
            + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else "")
            + "."
        )
        reasons = batch_failure_reasons(batch=batch.pk)
        if reasons:
            body += "\n\nWhy they failed:\n" + "\n".join(
                f"- {reason.count} × {reason.reason}" for reason in reasons
            )
        return Words(
            title=f"Your batch {batch.pk} on {batch.campaign.name} finished", body=body, url=url
        )
    if kind == Kind.BATCH_PAUSED:
        return Words(
            title=f"Your batch {batch.pk} on {batch.campaign.name} paused",
            body=(
                f"{batch.paused_reason or 'Paused.'}\n\n"
                f"{counts['sent']} of {_rewards(total)} sent so far; "
                f"{counts['waiting']} wait until it is resumed."
            ),
            url=url,
        )
    if kind == Kind.PAID_TWICE:
        rows = list(sends_paid_twice(batch=batch.pk)[:10])
        listed = "\n".join(
            f"- row {row.row_number}: {row.recipient} (rewards {row.remote_id} and "
            f"{row.duplicate_remote_id})"
            for row in rows
        )
        count = sends_paid_twice(batch=batch.pk).count()
        return Words(
            title=f"A recipient of batch {batch.pk} on {batch.campaign.name} was paid twice",
            body=(
                f"{count} row{'' if count == 1 else 's'} of {name.lower()} "
                f"{'was' if count == 1 else 'were'} paid twice: a reward Mokugift made late "
                f"arrived after the row had been sent again.\n{listed}"
            ),
            url=url,
        )
    raise ValueError(f"{kind!r} is no kind of notice")


# --- Delivery -------------------------------------------------------------------------------


def notices_deliver(*, kind: str, batch_pk: int | None, campaign_pk: int | None) -> list[Notice]:
    """Write a notice for each person concerned who did not turn `kind` off, and mail it.
    Returns quietly (nothing) when the batch or campaign is gone."""
    from campaigns.models import Campaign
    from rewards.models import Batch

    batch = campaign = None
    if batch_pk is not None:
        batch = (
            Batch.objects.select_related("campaign", "created_by", "decided_by")
            .defer("campaign__passcode")
            .filter(pk=batch_pk)
            .first()
        )
        if batch is None:
            return []
        campaign = batch.campaign
    if campaign_pk is not None:
        campaign = Campaign.objects.defer("passcode").filter(pk=campaign_pk).first()
        if campaign is None:
            return []
    approved_since = batch is not None and batch.state != batch.State.AWAITING_APPROVAL
    if kind == Kind.APPROVAL_NEEDED and approved_since:
        return []  # decided before the task ran: no one need look
    if kind in _BUDGET and (campaign is None or not campaign.monthly_budget):
        return []  # the budget was lifted since: nothing left to tell
    people = notice_recipients(kind=kind, batch=batch, campaign=campaign)
    off = _turned_off(kind=kind, people=people)
    people = [person for person in people if person.pk not in off]
    if not people:
        return []
    words = notice_words(kind=kind, batch=batch, campaign=campaign)
    notices = Notice.objects.bulk_create(
        Notice(user=person, kind=kind, title=words.title, body=words.body, url=words.url)
        for person in people
    )
    for notice, person in zip(notices, people, strict=True):
        _notice_mail(notice=notice, person=person)
    return notices


def _notice_mail(*, notice: Notice, person: User) -> None:
    """Mail one notice. A mail server that refuses or is down is logged (the kind of error,
    never its text: an SMTP server's answer may quote the login) and the notice stays on the
    page unmailed; a backend's errors are no one hierarchy, hence the broad except."""
    if not person.email:
        return
    link = settings.SITE_URL.rstrip("/") + notice.url
    try:
        send_mail(
            subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{notice.title}",
            message=f"{notice.body}\n\n{link}\n\n"
            f"Choose which notices you get: {settings.SITE_URL.rstrip('/')}"
            f"{reverse('notices:settings')}\n",
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[person.email],
        )
    except Exception as error:
        logger.warning(
            "notice %s (%s) not mailed to person %s: %s",
            notice.pk,
            notice.kind,
            person.pk,
            type(error).__name__,
        )
        return
    Notice.objects.filter(pk=notice.pk).update(emailed_at=timezone.now())


def notices_mark_read(*, user: User) -> int:
    """Every unread notice of this person, read now (they opened the notices page)."""
    return Notice.objects.filter(user=user, read_at=None).update(read_at=timezone.now())
