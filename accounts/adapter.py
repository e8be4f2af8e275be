"""What mokudash changes in django-allauth: sign-up closed, two-factor secrets encrypted, and
two-factor kept for the roles that require it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.http import HttpRequest

from accounts.selectors import person_must_use_mfa
from campaigns import crypto

if TYPE_CHECKING:
    from allauth.mfa.models import Authenticator


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """No one signs up: an admin invites people from the Team page (or `user_invite`)."""
        return False


class MFAAdapter(DefaultMFAAdapter):
    """allauth keeps a TOTP secret and the recovery codes' seed in the database in the clear
    unless told otherwise: ours are encrypted with the passcodes' keys (FIELD_ENCRYPTION_KEYS,
    rotated with them), so a dump of the database holds no second factor."""

    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text)

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        """A person whose role requires two-factor sign-in cannot remove their last factor."""
        if not person_must_use_mfa(user=authenticator.user):
            return True
        others = (
            type(authenticator).objects.filter(user=authenticator.user).exclude(pk=authenticator.pk)
        )
        return others.exclude(type="recovery_codes").exists()
