"""The cast of the tests: an admin, a marketer, a manager and an outsider with no role."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import Group

from campaigns import roles

PASSWORD = "correct horse battery staple"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_service(reason: str) -> None:
    """A test that needs a missing service fails in CI and skips elsewhere."""
    if IN_CI:
        pytest.fail(f"CI needs this service: {reason}")
    pytest.skip(reason)


def _user(django_user_model, username: str, role: str | None):
    user = django_user_model.objects.create_user(username=username, password=PASSWORD)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def admin_user(django_user_model):
    return _user(django_user_model, "alice-admin", roles.ADMIN)


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
