"""The account acts that django-allauth and Django announce only by signals, recorded in the
audit trail (audit.services.audit_record). Never a password, code or secret: only who, when,
from where and what kind."""

from __future__ import annotations

from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.contrib.auth import signals as auth_signals

from accounts.middleware import session_started
from audit.models import Kind
from audit.services import audit_record

# The kind of a two-factor change, by the authenticator's type.
_ADDED = {"totp": Kind.MFA_ACTIVATED, "webauthn": Kind.MFA_ACTIVATED}
_REMOVED = {"totp": Kind.MFA_DEACTIVATED, "webauthn": Kind.MFA_DEACTIVATED}


def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_started(request, user)
    audit_record(kind=Kind.SIGN_IN, actor=user, request=request)


def _sign_in_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    # Django has already replaced the password in `credentials` with stars; only the name
    # typed is kept (it may be no one's, or someone's address).
    typed = str(credentials.get("username") or credentials.get("email") or "")
    audit_record(kind=Kind.SIGN_IN_FAILED, actor_name=typed, request=request)


def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(kind=Kind.SIGN_OUT, actor=user, request=request)


def _password_changed(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(kind=Kind.PASSWORD_CHANGED, actor=user, request=request)


def _password_reset(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(
        kind=Kind.PASSWORD_RESET, actor_name=user.get_username(), person=user, request=request
    )


def _email_changed(
    sender: Any, request: Any, user: Any, from_email_address: Any, to_email_address: Any, **kw: Any
) -> None:
    old = from_email_address.email if from_email_address else ""
    audit_record(
        kind=Kind.EMAIL_CHANGED,
        actor=user,
        request=request,
        person=user,
        detail={"from": old, "to": to_email_address.email},
    )


def _authenticator(kinds: dict[str, Kind]) -> Any:
    def receiver(sender: Any, request: Any, user: Any, authenticator: Any, **kwargs: Any) -> None:
        kind = kinds.get(authenticator.type, Kind.RECOVERY_CODES_GENERATED)
        audit_record(
            kind=kind, actor=user, request=request, person=user, detail={"type": authenticator.type}
        )

    return receiver


def connect() -> None:
    auth_signals.user_logged_in.connect(_signed_in, dispatch_uid="audit-sign-in")
    auth_signals.user_login_failed.connect(_sign_in_failed, dispatch_uid="audit-sign-in-failed")
    auth_signals.user_logged_out.connect(_signed_out, dispatch_uid="audit-sign-out")
    account_signals.password_changed.connect(_password_changed, dispatch_uid="audit-password")
    account_signals.password_reset.connect(_password_reset, dispatch_uid="audit-reset")
    account_signals.email_changed.connect(_email_changed, dispatch_uid="audit-email")
    mfa_signals.authenticator_added.connect(_authenticator(_ADDED), dispatch_uid="audit-mfa-add")
    mfa_signals.authenticator_removed.connect(
        _authenticator(_REMOVED), dispatch_uid="audit-mfa-remove"
    )
    mfa_signals.authenticator_reset.connect(_authenticator({}), dispatch_uid="audit-mfa-reset")
