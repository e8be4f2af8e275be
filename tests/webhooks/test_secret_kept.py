"""The secret is encrypted at rest, and in no dump, audit event or task argument."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from webhooks.models import Event
from webhooks.services import endpoint_create, endpoint_secret_rotate, webhook_emit

pytestmark = pytest.mark.django_db


def test_dumpdata_of_the_webhooks_holds_no_secret_in_clear():
    made = endpoint_create(
        url="http://127.0.0.1:9/",
        description="",
        events=list(Event.values),
        enabled=True,
        actor=None,
    )
    rotated = endpoint_secret_rotate(endpoint=made.endpoint, actor=None)
    webhook_emit(event=Event.BATCH_FINISHED, data={})
    out = StringIO()
    call_command("dumpdata", "webhooks", "audit", stdout=out)
    dump = out.getvalue()

    for secret in (made.secret, rotated.secret):
        key = secret.removeprefix("whsec_")
        for i in range(len(key) - 7):  # nor any eight characters of it
            assert key[i : i + 8] not in dump
    assert "fernet:gAAAA" in dump
    assert AuditEvent.objects.filter(kind__startswith="webhook.").count() == 2
