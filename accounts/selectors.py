"""Reads about people: roles, who must use two-factor sign-in and whether they do, the team."""

from __future__ import annotations

import zoneinfo
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from accounts.models import Invitation
from campaigns import roles

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


# A role's mark among the permissions, the strongest first (migration campaigns 0002_roles
# gives Admin all of them): reading a role from the permissions Django keeps for the request
# costs no query.
_ROLE_BY_PERMISSION = (
    ("campaigns.manage_campaigns", roles.ADMIN),
    ("campaigns.send_rewards", roles.MARKETING),
    ("campaigns.view_reports", roles.MANAGER),
)


def person_role(*, user: User | AnonymousUser) -> str | None:
    """A person's role, from their permissions (a superuser is an Admin); None for none."""
    if not user.is_authenticated or not user.is_active:
        return None
    for permission, role in _ROLE_BY_PERMISSION:
        if user.has_perm(permission):
            return role
    return None


def person_must_use_mfa(*, user: User | AnonymousUser) -> bool:
    """Whether this person's role requires two-factor sign-in (MFA_REQUIRED_ROLES)."""
    role = person_role(user=user)
    return role is not None and role in settings.MFA_REQUIRED_ROLES


def person_uses_mfa(*, user: User | AnonymousUser) -> bool:
    """Whether this person has a second factor (TOTP; recovery codes alone are not one)."""
    from allauth.mfa.models import Authenticator

    if not user.is_authenticated:
        return False
    return (
        Authenticator.objects.filter(user_id=user.pk)
        .exclude(type=Authenticator.Type.RECOVERY_CODES)
        .exists()
    )


def team_people(*, search: str = "") -> QuerySet[User]:
    """Everyone, active first, for the Team page: roles, campaigns and second factors in a
    few queries, whatever the team's size."""
    from allauth.mfa.models import Authenticator
    from django.contrib.auth.models import User
    from django.db.models import Exists, OuterRef, Q

    people = User.objects.all()
    if search:
        people = people.filter(Q(username__icontains=search) | Q(email__icontains=search))
    return (
        people.annotate(
            has_mfa=Exists(
                Authenticator.objects.filter(user=OuterRef("pk")).exclude(
                    type=Authenticator.Type.RECOVERY_CODES
                )
            )
        )
        .select_related("campaign_access")
        .prefetch_related("groups", "campaign_access__campaigns")
        .order_by("-is_active", "username")
    )


def invitations_pending() -> QuerySet[Invitation]:
    from django.utils import timezone

    return (
        Invitation.objects.filter(
            accepted_at=None, withdrawn_at=None, expires_at__gt=timezone.now()
        )
        .select_related("invited_by")
        .prefetch_related("campaigns")
    )


_ZONE_KEPT = 3600


def person_zone_key(user_pk: int) -> str:
    return f"accounts:time-zone:{user_pk}"


def person_zone(*, user: User | AnonymousUser) -> zoneinfo.ZoneInfo | None:
    """A person's own time zone, None for the server's (TIME_ZONE): read from their Profile,
    kept in the cache for an hour (profile_update forgets it). A name the system no longer
    knows counts as none."""
    if not user.is_authenticated:
        return None
    key = person_zone_key(user.pk)
    name = cache.get(key)
    if name is None:
        from accounts.models import Profile

        name = (
            Profile.objects.filter(user_id=user.pk).values_list("time_zone", flat=True).first()
            or ""
        )
        cache.set(key, name, _ZONE_KEPT)
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
