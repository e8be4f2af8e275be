"""The audit trail is append-only: on PostgreSQL a trigger refuses UPDATE and DELETE."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent, Kind
from audit.services import SecretInAuditDetail, audit_record


def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's; SQLite relies on the code alone")


@pytest.mark.django_db
def test_raw_sql_cannot_change_an_audit_event():
    _postgresql_only()
    event = audit_record(kind=Kind.SIGN_IN_FAILED, actor_name="mallory")

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE audit_auditevent SET actor_name = 'nobody' WHERE id = %s", [event.pk]
        )
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "mallory"


@pytest.mark.django_db
def test_raw_sql_cannot_delete_an_audit_event():
    _postgresql_only()
    event = audit_record(kind=Kind.SIGN_IN_FAILED, actor_name="mallory")

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_a_detail_that_would_hold_a_secret_is_refused():
    with pytest.raises(SecretInAuditDetail, match="passcode"):
        audit_record(kind=Kind.PASSCODE_REPLACED, detail={"changes": {"passcode": "hunter2"}})
    assert not AuditEvent.objects.exists()
