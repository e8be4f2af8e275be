"""The team's writes: invitations, adding people, roles, campaign access, deactivation. Each
act leaves an audit event in the same transaction. The last active admin is kept."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Invitation, Profile
from accounts.selectors import person_zone_key
from audit.models import Kind
from audit.services import audit_record
from campaigns import roles
from campaigns.models import Campaign, CampaignAccess

if TYPE_CHECKING:
    from django.http import HttpRequest

ROLES = (roles.MARKETING, roles.MANAGER, roles.ADMIN)
# How long an invitation's link works.
INVITATION_DAYS = 3


class TeamRefused(ValueError):
    """What was asked cannot be done; the message says why, for the person who asked."""


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _campaign_names(*, all_campaigns: bool, campaigns: Iterable[Campaign]) -> list[str] | str:
    return "all" if all_campaigns else sorted(c.campaign_id for c in campaigns)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise TeamRefused(f"{role!r} is no role: one of {', '.join(ROLES)}.")


# --- Invitations ---------------------------------------------------------------------------


def person_invite(
    *,
    actor: User | None,
    email: str,
    role: str,
    all_campaigns: bool,
    campaigns: Iterable[Campaign] = (),
    site_url: str,
    request: HttpRequest | None = None,
) -> Invitation:
    """Invite `email` with a role and campaigns; the mail with its link goes after commit.
    `site_url`: where the dashboard answers (the request's, or SITE_URL for a command)."""
    from django.urls import reverse

    _check_role(role)
    email = email.strip().lower()
    campaigns = list(campaigns)
    if not all_campaigns and not campaigns and role != roles.ADMIN:
        raise TeamRefused("Choose the campaigns, or all campaigns.")
    if User.objects.filter(email__iexact=email, is_active=True).exists():
        raise TeamRefused(f"{email} already belongs to someone in the team.")
    now = timezone.now()
    if Invitation.objects.filter(
        email=email, accepted_at=None, withdrawn_at=None, expires_at__gt=now
    ).exists():
        raise TeamRefused(
            f"{email} has an invitation waiting: withdraw it first to send a new one."
        )
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(
            email=email,
            role=role,
            all_campaigns=all_campaigns or role == roles.ADMIN,
            token_hash=_token_hash(token),
            invited_by=actor,
            created_at=now,
            expires_at=now + dt.timedelta(days=INVITATION_DAYS),
        )
        invitation.campaigns.set(campaigns)
        audit_record(
            kind=Kind.INVITATION_SENT,
            actor=actor,
            request=request,
            detail={
                "email": email,
                "role": role,
                "campaigns": _campaign_names(
                    all_campaigns=invitation.all_campaigns, campaigns=campaigns
                ),
            },
        )
        link = site_url.rstrip("/") + reverse("accounts:invitation_accept", args=[token])
        inviter = actor.get_username() if actor else "An admin"
        transaction.on_commit(
            lambda: _invitation_mail(invitation=invitation, link=link, inviter=inviter)
        )
    return invitation


def _invitation_mail(*, invitation: Invitation, link: str, inviter: str) -> None:
    context = {
        "invitation": invitation,
        "link": link,
        "inviter": inviter,
        "days": INVITATION_DAYS,
    }
    send_mail(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{inviter} invites you to mokudash",
        message=render_to_string("accounts/email/invitation.txt", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


def invitation_find(*, token: str) -> Invitation | None:
    return Invitation.objects.filter(token_hash=_token_hash(token)).first()


def invitation_refusal(invitation: Invitation | None) -> str | None:
    """Why this link no longer works, in words; None when it does."""
    if invitation is None:
        return "This invitation link is not valid. Ask an admin of your team for a new one."
    if invitation.accepted_at is not None:
        return "This invitation has been used already. Log in, or ask an admin for a new one."
    if invitation.withdrawn_at is not None:
        return "This invitation was withdrawn. Ask an admin of your team for a new one."
    if invitation.expires_at <= timezone.now():
        return (
            f"This invitation expired on {invitation.expires_at:%d %B %Y}. "
            "Ask an admin of your team for a new one."
        )
    return None


def invitation_accept(
    *, token: str, username: str, password: str, request: HttpRequest | None = None
) -> User:
    """Make the invited person, with the invitation's role and campaigns and a confirmed
    email address. The link works once: two clicks at once make one person."""
    invitation = invitation_find(token=token)
    refusal = invitation_refusal(invitation)
    if refusal or invitation is None:
        raise TeamRefused(refusal or "This invitation link is not valid.")
    username = username.strip()
    if User.objects.filter(username__iexact=username).exists():
        raise TeamRefused(f"The username {username!r} is taken: choose another.")
    candidate = User(username=username, email=invitation.email)
    try:
        password_validation.validate_password(password, candidate)
    except ValidationError as error:
        raise TeamRefused(" ".join(error.messages)) from None
    now = timezone.now()
    with transaction.atomic():
        # The claim: only one request moves the invitation from waiting to accepted.
        claimed = Invitation.objects.filter(
            pk=invitation.pk, accepted_at=None, withdrawn_at=None, expires_at__gt=now
        ).update(accepted_at=now)
        if claimed != 1:
            raise TeamRefused(
                "This invitation has been used already. Log in, or ask an admin for a new one."
            )
        person = User.objects.create_user(
            username=username, email=invitation.email, password=password
        )
        Invitation.objects.filter(pk=invitation.pk).update(accepted_by=person)
        _role_give(person, invitation.role)
        access = CampaignAccess.objects.create(user=person, all_campaigns=invitation.all_campaigns)
        access.campaigns.set(invitation.campaigns.all())
        EmailAddress.objects.create(
            user=person, email=invitation.email, verified=True, primary=True
        )
        audit_record(
            kind=Kind.INVITATION_ACCEPTED,
            actor=person,
            request=request,
            person=person,
            detail={"email": invitation.email, "role": invitation.role},
        )
    return person


def invitation_withdraw(
    *, actor: User, invitation: Invitation, request: HttpRequest | None = None
) -> None:
    with transaction.atomic():
        withdrawn = Invitation.objects.filter(
            pk=invitation.pk, accepted_at=None, withdrawn_at=None
        ).update(withdrawn_at=timezone.now())
        if withdrawn:
            audit_record(
                kind=Kind.INVITATION_REVOKED,
                actor=actor,
                request=request,
                detail={"email": invitation.email},
            )


# --- People --------------------------------------------------------------------------------


def _role_give(person: User, role: str) -> None:
    groups = Group.objects.filter(name__in=ROLES)
    person.groups.remove(*groups)
    person.groups.add(Group.objects.get(name=role))


def person_role_of(person: User) -> str | None:
    names = {group.name for group in person.groups.all()}
    for role in (roles.ADMIN, roles.MANAGER, roles.MARKETING):
        if role in names:
            return role
    return None


def _active_admin_ids() -> set[int]:
    active = User.objects.filter(is_active=True)
    return set(active.filter(groups__name=roles.ADMIN).values_list("pk", flat=True)) | set(
        active.filter(is_superuser=True).values_list("pk", flat=True)
    )


def _active_admins_locked() -> set[int]:
    """The active admins' numbers, read after locking their rows until the transaction ends:
    two admins demoting or deactivating each other at the same moment take turns, and the
    second reads again after the first committed, so it is refused rather than leaving no
    admin. (SQLite has one writer at a time anyway.)"""
    list(User.objects.select_for_update().filter(pk__in=_active_admin_ids()).order_by("pk"))
    return _active_admin_ids()


def _keep_an_admin(person: User, *, what: str) -> None:
    admins = _active_admins_locked()
    if admins <= {person.pk}:
        raise TeamRefused(
            f"{person.get_username()} is the last active admin: {what} would leave no one "
            "to manage the team and the campaigns. Make someone else an admin first."
        )


def person_add(
    *,
    actor: User | None,
    username: str,
    email: str,
    role: str,
    all_campaigns: bool,
    campaigns: Iterable[Campaign] = (),
    password: str,
) -> User:
    """Add a person directly (the `user_add` command), with a password they were given."""
    _check_role(role)
    campaigns = list(campaigns)
    email = email.strip().lower()
    if User.objects.filter(username__iexact=username).exists():
        raise TeamRefused(f"The username {username!r} is taken.")
    if email and User.objects.filter(email__iexact=email).exists():
        raise TeamRefused(f"{email} already belongs to someone in the team.")
    candidate = User(username=username, email=email)
    try:
        password_validation.validate_password(password, candidate)
    except ValidationError as error:
        raise TeamRefused(" ".join(error.messages)) from None
    with transaction.atomic():
        person = User.objects.create_user(username=username, email=email, password=password)
        _role_give(person, role)
        access = CampaignAccess.objects.create(
            user=person, all_campaigns=all_campaigns or role == roles.ADMIN
        )
        access.campaigns.set(campaigns)
        if email:
            EmailAddress.objects.create(user=person, email=email, verified=True, primary=True)
        audit_record(
            kind=Kind.PERSON_ADDED,
            actor=actor,
            person=person,
            detail={
                "role": role,
                "campaigns": _campaign_names(
                    all_campaigns=access.all_campaigns, campaigns=campaigns
                ),
            },
        )
    return person


def person_role_set(
    *, actor: User, person: User, role: str, request: HttpRequest | None = None
) -> None:
    _check_role(role)
    with transaction.atomic():
        old = person_role_of(person)
        if old == role:
            return
        if old == roles.ADMIN or person.is_superuser:
            _keep_an_admin(person, what=f"making them a {role}")
        _role_give(person, role)
        if person.is_superuser:
            User.objects.filter(pk=person.pk).update(is_superuser=False)
        audit_record(
            kind=Kind.ROLE_CHANGED,
            actor=actor,
            request=request,
            person=person,
            detail={"role": [old, role]},
        )


def person_campaigns_set(
    *,
    actor: User,
    person: User,
    all_campaigns: bool,
    campaigns: Iterable[Campaign],
    request: HttpRequest | None = None,
) -> None:
    campaigns = list(campaigns)
    with transaction.atomic():
        access, _ = CampaignAccess.objects.select_for_update().get_or_create(
            user=person, defaults={"all_campaigns": True}
        )
        old = _campaign_names(all_campaigns=access.all_campaigns, campaigns=access.campaigns.all())
        access.all_campaigns = all_campaigns
        access.save(update_fields=["all_campaigns"])
        access.campaigns.set([] if all_campaigns else campaigns)
        new = _campaign_names(all_campaigns=all_campaigns, campaigns=campaigns)
        if old != new:
            audit_record(
                kind=Kind.ACCESS_CHANGED,
                actor=actor,
                request=request,
                person=person,
                detail={"campaigns": [old, new]},
            )


def person_deactivate(*, actor: User, person: User, request: HttpRequest | None = None) -> None:
    """Deactivate (never delete: the history keeps their name) and end their sessions now."""
    from allauth.usersessions.models import UserSession
    from django.contrib.sessions.models import Session

    if person.pk == actor.pk:
        raise TeamRefused("You cannot deactivate yourself: ask another admin.")
    with transaction.atomic():
        if person_role_of(person) == roles.ADMIN or person.is_superuser:
            _keep_an_admin(person, what="deactivating them")
        if not User.objects.filter(pk=person.pk, is_active=True).update(is_active=False):
            return
        ended = 0
        for session in UserSession.objects.filter(user=person):
            session.end()
            ended += 1
        # Sessions begun before sessions were recorded: found by the user id they hold.
        if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db":
            for row in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
                if row.get_decoded().get("_auth_user_id") == str(person.pk):
                    row.delete()
                    ended += 1
        audit_record(
            kind=Kind.PERSON_DEACTIVATED,
            actor=actor,
            request=request,
            person=person,
            detail={"sessions_ended": ended},
        )


def person_reactivate(*, actor: User, person: User, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        if User.objects.filter(pk=person.pk, is_active=False).update(is_active=True):
            audit_record(kind=Kind.PERSON_REACTIVATED, actor=actor, request=request, person=person)


# --- A person's own settings ---------------------------------------------------------------


def profile_update(*, user: User, time_zone: str, notices_off: Iterable[str]) -> Profile:
    """Save a person's time zone ("" for the server's TIME_ZONE) and the kinds of notice they
    turned off (notices.models.Kind values). No audit event: it concerns them alone."""
    import zoneinfo

    from notices.models import Kind

    if time_zone and time_zone not in zoneinfo.available_timezones():
        raise ValidationError(f"{time_zone!r} is no time zone.")
    off = sorted(set(notices_off))
    unknown = [kind for kind in off if kind not in Kind.values]
    if unknown:
        raise ValidationError(f"No such kind of notice: {', '.join(unknown)}.")
    profile, _ = Profile.objects.update_or_create(
        user=user, defaults={"time_zone": time_zone, "notices_off": off}
    )
    # Every session of theirs reads the new zone at its next request.
    transaction.on_commit(lambda: cache.delete(person_zone_key(user.pk)))
    return profile


# The parts of an allauth Authenticator's data that MFAAdapter encrypts: a TOTP secret, the
# recovery codes' seed, and recovery codes imported from elsewhere (each on its own).
_ENCRYPTED_MFA_DATA = ("secret", "seed")
_ENCRYPTED_MFA_LISTS = ("migrated_codes",)


def authenticators_rotate_encryption_keys() -> int:
    """Re-encrypt every two-factor secret (TOTP secrets, recovery codes' seeds) under the
    newest key of FIELD_ENCRYPTION_KEYS: a key removed after the rotation would otherwise
    lock everyone with two-factor sign-in out. Part of `rotate_encryption_keys`."""
    from allauth.mfa.models import Authenticator

    from campaigns import crypto

    with transaction.atomic():
        authenticators = list(Authenticator.objects.select_for_update().order_by("pk"))
        for authenticator in authenticators:
            data = dict(authenticator.data)
            for name in _ENCRYPTED_MFA_DATA:
                if data.get(name):
                    data[name] = crypto.rotate(data[name])
            for name in _ENCRYPTED_MFA_LISTS:
                if isinstance(data.get(name), list):
                    data[name] = [crypto.rotate(token) for token in data[name]]
            authenticator.data = data
        Authenticator.objects.bulk_update(authenticators, ["data"])
    return len(authenticators)
