"""The three roles: groups made by the data migration 0002_roles, with exactly their permissions."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from campaigns import roles

# Written out here, not read from the migrations: the test must be able to disagree with them.
# What 0002_roles made...
EXPECTED_0002 = {
    roles.MARKETING: {"send_rewards"},
    roles.MANAGER: {"view_reports", "export_rewards"},
    roles.ADMIN: {"manage_campaigns", "send_rewards", "view_reports", "export_rewards"},
}
# ...and what the roles hold after every migration: 0007 lets Managers and Admins approve.
EXPECTED = {
    roles.MARKETING: {"send_rewards"},
    roles.MANAGER: {"view_reports", "export_rewards", "approve_batches"},
    roles.ADMIN: {
        "manage_campaigns",
        "send_rewards",
        "view_reports",
        "export_rewards",
        "approve_batches",
    },
}


def _groups() -> dict[str, set[str]]:
    """Every group and the codenames of its permissions (all of them of the campaigns app)."""
    made = {}
    for group in Group.objects.prefetch_related("permissions__content_type"):
        assert {p.content_type.app_label for p in group.permissions.all()} <= {"campaigns"}
        made[group.name] = {p.codename for p in group.permissions.all()}
    return made


@pytest.mark.django_db
def test_the_migrated_database_holds_the_three_roles_with_exactly_their_permissions():
    # tests/conftest.py makes a missing group again, but only for a test that asks for the cast
    # (this one does not), and pytest-django runs every test like this one, in a transaction
    # rolled back, before any transactional test flushes the tables: so what this test reads is
    # what `migrate` left, 0002_roles included. The next test does not depend on that order.
    assert _groups() == EXPECTED


@pytest.mark.django_db
def test_the_roles_migration_makes_the_groups_and_their_permissions_from_nothing():
    # A fresh database, as `migrate` finds it when 0002_roles runs: no group and no permission
    # of the campaigns app yet (Django makes permissions only after every migration, so the
    # migration has to make them itself). Then its own function, with the models of its time.
    Group.objects.all().delete()
    Permission.objects.filter(content_type__app_label="campaigns").delete()
    migration = importlib.import_module("campaigns.migrations.0002_roles")
    state = MigrationLoader(connection).project_state(("campaigns", "0002_roles"))

    migration.make_roles(state.apps, None)

    assert _groups() == EXPECTED_0002


@pytest.mark.django_db
def test_the_tests_make_a_flushed_role_again_with_what_every_migration_gave_it():
    # A transactional test's flush empties the groups; tests/conftest.py makes them again for
    # the cast. They must hold what `migrate` leaves, or approvals and the like fail only there.
    from tests.conftest import _role_group

    Group.objects.all().delete()
    for role in EXPECTED:
        _role_group(role)
    assert _groups() == EXPECTED
