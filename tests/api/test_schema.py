"""The API against its own OpenAPI document, by schemathesis: every operation of
/api/v1/openapi.json gets generated requests (valid and not), signed with a key of every scope,
and each answer must be no 500 and exactly what the document says (a documented status code,
its content type, its schema). A new operation is covered without a line here, and one that
the document leaves out fails test_every_operation_is_tested.

Requests go through Django's WSGI application in this process, inside the test's transaction:
the tasks a batch enqueues wait for a commit that never comes, so no worker is needed.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.pytest.plugin import SchemaHandleMark
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.routes import api
from api.services import api_key_create
from campaigns.models import Approval
from rewards.models import Batch
from rewards.services import sending
from rewards.services.sending import RecipientRow
from tests.conftest import campaign_make
from tests.mirror.helpers import mirror_add

DOCUMENT = "/api/v1/openapi.json"
# Per operation; a deeper search now and then: API_SCHEMA_EXAMPLES=300 (about 8 minutes).
EXAMPLES = int(os.environ.get("API_SCHEMA_EXAMPLES", "20"))
APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi(DOCUMENT, APP)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# What the data of `everything` is called, for the cases that name it (set by the fixture).
REAL: dict[str, list] = {}


@schema.hook("flatmap_case")
def _sometimes_real(context, case):
    """Half of the cases name what exists (a batch, the campaign, valid addresses), or almost
    every read would be a 404 and no answer of success would be checked against its schema."""
    return st.tuples(st.booleans(), st.sampled_from(REAL["batches"])).map(
        lambda drawn: _real(case, drawn[1]) if drawn[0] else case
    )


def _real(case, batch_id: int):
    if isinstance(case.path_parameters, dict):
        if "batch_id" in case.path_parameters:
            case.path_parameters = {**case.path_parameters, "batch_id": batch_id}
        if "campaign" in case.path_parameters:
            case.path_parameters = {**case.path_parameters, "campaign": "spring-1"}
    if isinstance(case.query, dict):
        if "campaign" in case.query:
            case.query = {**case.query, "campaign": "spring-1"}
        if "batch" in case.query:
            case.query = {**case.query, "batch": batch_id}
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("campaign"), str):
        body = {**body, "campaign": "spring-1"}
        if isinstance(body.get("recipients"), list):
            body["recipients"] = [
                {**item, "recipient": f"p{n}@example.com"} if isinstance(item, dict) else item
                for n, item in enumerate(body["recipients"])
            ]
        case.body = body
    return case


@pytest.fixture
def everything(db, admin_user, marketer, settings):
    """A key of every scope of an admin who sees a campaign that has a batch with rows and
    rewards in the mirror, so that reads find something; no rate limit (hundreds of requests
    a minute here)."""
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    spring = campaign_make("Spring", "spring-1")
    autumn = campaign_make("Autumn", "autumn-1")
    autumn.approval = Approval.ALWAYS
    autumn.save()
    rows = [RecipientRow(row_number=n, recipient=f"r{n}@example.com", name="R") for n in (1, 2)]
    REAL["batches"] = [
        sending.batch_create(
            campaign=campaign, mode="email", rows=rows, created_by=sender, source=Batch.Source.API
        ).pk
        # One sending; one awaiting approval, of another person, so that the admin may decide.
        for campaign, sender in ((spring, admin_user), (autumn, marketer))
    ]
    for day in range(3):
        mirror_add(spring, dt.datetime(2026, 5, 10 + day, 12, tzinfo=dt.UTC))
    key = api_key_create(user=admin_user, name="schemathesis", scopes="send,read,reports")
    # Django's test client does this too: the end of a request would otherwise close the
    # connection, and with it the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {"Authorization": f"Bearer {key.secret}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
# derandomize: the same requests on every run, so that CI is stable (and a failure repeats).
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_answers_as_its_document_says(case, everything):
    case.call_and_validate(headers=everything, checks=CHECKS)


def test_every_operation_is_tested(client):
    """The parametrized set is every path and method of the document the API serves, and the
    document lists every operation of the NinjaAPI."""
    document = client.get(DOCUMENT).json()
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    # The schema the plugin parametrizes the test with, whatever filter it may be given.
    parametrized = SchemaHandleMark.get(test_the_api_answers_as_its_document_says)
    assert parametrized is not None
    tested = {
        (operation.ok().method.upper(), operation.ok().path)
        for operation in parametrized.get_all_operations()
    }
    assert tested == documented
    routed = {
        (method.upper(), "/api/v1" + prefix.rstrip("/") + path)
        for prefix, router in api._routers
        for path, view in router.path_operations.items()
        for operation in view.operations
        for method in operation.methods
    }
    assert routed == documented
