"""The cast of the tests: an admin, a marketer, a manager and an outsider with no role."""

from __future__ import annotations

import importlib
import os

import pytest
from django.contrib.auth.models import Group, Permission
from django.test.utils import override_settings

from campaigns import roles

PASSWORD = "correct horse battery staple"
# The admin's authenticator app: Admins must use two-factor sign-in (MFA_REQUIRED_ROLES).
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


# A code typed with less than this many seconds of its 30 left may reach the server in the
# next period, where it no longer counts (allauth's MFA_TOTP_TOLERANCE is 0): a person would
# wait for the next code, and so does totp_code. A browser login crossed it so in a CI run.
TOTP_MARGIN_SECONDS = 5


def totp_code(secret: str = TOTP_SECRET, *, clock=None, sleep=None) -> str:
    """The code an authenticator app shows now for this secret, with at least
    TOTP_MARGIN_SECONDS of its period left. A code counts once: the cache's record of codes
    used is forgotten here, so a test may sign in twice in 30 s."""
    import time

    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
    from django.core.cache import cache

    clock, sleep = clock or time.time, sleep or time.sleep
    left = 30 - clock() % 30
    if left < TOTP_MARGIN_SECONDS:
        sleep(left + 0.1)
    code = format_hotp_value(hotp_value(secret, int(clock()) // 30))
    cache.delete_many(_used_code_keys(code))
    return code


def _used_code_keys(code: str) -> list[str]:
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP

    return [
        TOTP(authenticator)._get_used_cache_key(code)
        for authenticator in Authenticator.objects.filter(type=Authenticator.Type.TOTP)
    ]


def reauthenticate(client) -> None:
    """Give the password again, as allauth asks before the gravest acts (adding a campaign,
    replacing a passcode, inviting, changing roles): good for 10 minutes."""
    from django.urls import reverse

    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302, response.content[:500]


def totp_activate(user, secret: str = TOTP_SECRET) -> None:
    from allauth.mfa.totp.internal.auth import TOTP

    TOTP.activate(user, secret)


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_service(reason: str) -> None:
    """A test that needs a missing service fails in CI and skips elsewhere."""
    if IN_CI:
        pytest.fail(f"CI needs this service: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hasher(django_test_environment):
    # The real hasher spends half a second per password on purpose; the cast and every login
    # of the tests would pay it many times over.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def _empty_cache():
    # Each test starts with an empty cache: allauth counts sign-ins per address there (30 a
    # minute from one address), and a whole suite signs in from 127.0.0.1 far more often.
    from django.core.cache import cache

    cache.clear()


def _role_group(role: str) -> Group:
    # A transactional test (any test on live_server) ends with a flush that empties every table,
    # the groups the data migration made included; post_migrate brings back the permissions but
    # not the groups. So a later test makes its role's group again, as migration 0002_roles did.
    # Later migrations that grant a role more (0007: approving batches) are replayed too.
    group, created = Group.objects.get_or_create(name=role)
    if created:
        migration = importlib.import_module("campaigns.migrations.0002_roles")
        codenames = list(migration.ROLE_PERMISSIONS[role])
        controls = importlib.import_module("campaigns.migrations.0007_spending_controls")
        if role in controls.APPROVERS:
            codenames.append("approve_batches")
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="campaigns", codename__in=codenames)
        )
    return group


def _user(django_user_model, username: str, role: str | None):
    user = django_user_model.objects.create_user(username=username, password=PASSWORD)
    if role:
        user.groups.add(_role_group(role))
    return user


@pytest.fixture
def admin_user(django_user_model):
    user = _user(django_user_model, "alice-admin", roles.ADMIN)
    totp_activate(user)
    return user


@pytest.fixture
def marketer(django_user_model):
    return _user(django_user_model, "mark-marketer", roles.MARKETING)


@pytest.fixture
def manager(django_user_model):
    return _user(django_user_model, "mona-manager", roles.MANAGER)


@pytest.fixture
def outsider(django_user_model):
    return _user(django_user_model, "otto-outsider", None)


@pytest.fixture
def cast(admin_user, marketer, manager, outsider):
    return {"admin": admin_user, "marketer": marketer, "manager": manager, "outsider": outsider}


class SandboxServer:
    """The sandbox served over real HTTP by pytest-django's live server."""

    def __init__(self, live_server, settings):
        self.api_url = live_server.url + "/sandbox/api/"
        self._settings = settings
        settings.MOKUGIFT_SANDBOX_URL = self.api_url

    def campaign(self, campaign_id: str = "c-1", passcode: str = "pass-1", **sandbox_fields):
        """A sandbox campaign (sandbox_campaign_save's keywords: coins, fault, latency_ms...)
        and the matching dashboard Campaign (environment "sandbox"), which is returned."""
        from campaigns.models import Campaign
        from campaigns.services import campaign_create, campaign_passcode_replace
        from sandbox.services import sandbox_campaign_save

        sandbox_campaign_save(campaign_id=campaign_id, passcode=passcode, **sandbox_fields)
        self._settings.MOKUGIFT_SANDBOX_URL = self.api_url
        existing = Campaign.objects.filter(environment="sandbox", campaign_id=campaign_id).first()
        if existing:
            if existing.passcode != passcode:
                campaign_passcode_replace(campaign=existing, actor=None, passcode=passcode)
            return existing
        return campaign_create(
            actor=None,
            name=f"Sandbox {campaign_id}",
            campaign_id=campaign_id,
            environment="sandbox",
            passcode=passcode,
        )


@pytest.fixture
def sandbox(live_server, settings):
    """`sandbox.api_url`, and `sandbox.campaign(campaign_id="c-1", passcode="pass-1", **kw)`."""
    return SandboxServer(live_server, settings)


def campaign_make(name: str, campaign_id: str):
    """A sandbox campaign, made as an admin would (no Mokugift is asked)."""
    from campaigns.services import campaign_create

    return campaign_create(
        actor=None, name=name, campaign_id=campaign_id, environment="sandbox", passcode="p"
    )


@pytest.fixture
def spring(db):
    """Two campaigns, for the tests of who sees which."""
    return campaign_make("Spring", "spring-1")


@pytest.fixture
def autumn(db):
    return campaign_make("Autumn", "autumn-1")


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback (aiosmtpd), and the settings that send mail to it."""
    from tests.mail import SMTPServer

    server = SMTPServer()
    server.start()
    # Django 6.1's MAILERS (it replaces EMAIL_BACKEND and the EMAIL_* settings).
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": server.host, "port": server.port, "timeout": 10},
        }
    }
    yield server
    server.stop()
