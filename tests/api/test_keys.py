"""Keys at the API's door: each dead or too narrow key refused, as a problem, and a key never
does more than its person."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone

from api.models import ApiKey
from api.services import api_key_create, api_key_revoke
from tests.api.conftest import ApiClient, one

pytestmark = pytest.mark.django_db


def _unauthenticated(answer) -> None:
    assert answer.status_code == 401
    assert answer["Content-Type"] == "application/problem+json"
    assert answer["WWW-Authenticate"].startswith("Bearer")
    assert answer.json()["type"].endswith("/unauthenticated")


def test_no_key_and_an_unknown_key_are_refused(client, spring):
    _unauthenticated(ApiClient(client, "").get("/campaigns"))
    _unauthenticated(ApiClient(client, "mkd_not-a-key").get("/campaigns"))
    _unauthenticated(ApiClient(client, "someone-elses-token").get("/campaigns"))


def test_a_revoked_key_is_refused_at_once(client, marketer, spring):
    new = api_key_create(user=marketer, name="crm", scopes="read")
    api = ApiClient(client, new.secret)
    assert api.get("/campaigns").status_code == 200
    assert api_key_revoke(api_key=new.api_key, actor=marketer)
    _unauthenticated(api.get("/campaigns"))


def test_an_expired_key_is_refused(client, marketer, spring):
    new = api_key_create(user=marketer, name="crm", scopes="read", expires_days=1)
    api = ApiClient(client, new.secret)
    assert api.get("/campaigns").status_code == 200
    ApiKey.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    _unauthenticated(api.get("/campaigns"))


def test_a_deactivated_persons_key_is_refused(client, marketer, spring):
    api = ApiClient(client, api_key_create(user=marketer, name="crm", scopes="read").secret)
    marketer.is_active = False
    marketer.save()
    _unauthenticated(api.get("/campaigns"))


def test_a_key_without_the_scope_is_refused_naming_it(api_as, marketer, spring):
    reader = api_as(marketer, scopes="read")
    refused = reader.post("/batches", one())
    assert refused.status_code == 403
    assert "'send' scope" in refused.json()["detail"]
    assert reader.get("/reports/monthly", {"year": 2026}).status_code == 403
    assert api_as(marketer, scopes="send").get("/campaigns").status_code == 403


def test_a_key_does_no_more_than_its_person(api_as, outsider, manager, spring):
    # An outsider has no role; a manager reads and approves, but does not send.
    assert api_as(outsider).post("/batches", one()).status_code == 403
    assert api_as(outsider).get("/rewards").status_code == 403
    refused = api_as(manager).post("/batches", one())
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Your role may not send rewards."


def test_a_key_sent_with_another_scheme_is_not_logged(client, marketer, spring, settings, caplog):
    settings.DEBUG = True
    secret = api_key_create(user=marketer, name="crm", scopes="read").secret
    with caplog.at_level(logging.DEBUG):
        answer = client.get("/api/v1/campaigns", headers={"Authorization": f"Token {secret}"})
    assert answer.status_code == 401
    assert secret not in caplog.text
    assert secret[4:] not in answer.content.decode()


def test_the_last_use_of_a_key_is_kept(api_as, marketer, spring):
    api = api_as(marketer, scopes="read")
    assert ApiKey.objects.get().last_used_at is None
    api.get("/campaigns")
    assert ApiKey.objects.get().last_used_at is not None


def test_a_key_over_its_rate_limit_is_told_when_to_come_back(api_as, marketer, spring, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    api = api_as(marketer, scopes="read")
    assert [api.get("/campaigns").status_code for _ in range(3)] == [200] * 3
    limited = api.get("/campaigns")
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert "more than 3 requests this minute" in limited.json()["detail"]
    # Another key counts on its own.
    assert api_as(marketer, scopes="read").get("/campaigns").status_code == 200


def test_a_body_over_the_limit_is_refused_saying_its_size(api_as, marketer, spring, settings):
    settings.API_MAX_BODY_BYTES = 1024 * 1024
    body = one()
    body["recipients"] = [
        {"recipient": f"r{i}@example.com", "name": "x" * 40} for i in range(20000)
    ]
    answer = api_as(marketer).post("/batches", body)
    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/problem+json"
    assert "the API reads at most 1 MB" in answer.json()["detail"]


def test_every_operation_documents_what_the_door_answers_before_it(api_as, marketer, settings):
    # The door refuses a declared body over the limit whatever the method: a GET's 413 was
    # not in its document (only the POSTs listed it).
    settings.API_MAX_BODY_BYTES = 1024
    answer = api_as(marketer).get("/campaigns", headers={"Content-Length": "2048"})
    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/problem+json"
    paths = api_as(marketer).get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status in ("401", "413", "422", "429"):
                assert status in operation["responses"], (method, path, status)


def test_a_body_within_the_limit_but_over_djangos_form_limit_is_read(
    api_as, marketer, spring, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = one()
    body["recipients"] = [{"recipient": f"r{i}@example.com"} for i in range(200)]
    assert api_as(marketer).post("/batches", body).status_code == 201


def test_the_document_and_its_page_open_without_a_key(client):
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert "/api/v1/batches" in paths and "/api/v1/batches/{batch_id}/approve" in paths
    problem = paths["/api/v1/batches"]["post"]["responses"]["422"]["content"]
    assert list(problem) == ["application/problem+json"]
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert b"/static/ninja/swagger-ui-bundle.js" in page.content
    assert b"cdn" not in page.content.lower()


def test_a_method_the_path_does_not_answer_is_a_problem_saying_which_it_does(api_as, marketer):
    # django-ninja's own 405 was a text/html "Method not allowed".
    answer = api_as(marketer).get("/batches")
    assert answer.status_code == 405
    assert answer["Content-Type"] == "application/problem+json"
    assert answer["Allow"] == "POST"
    problem = answer.json()
    assert problem["type"] == "https://mokudash.org/problems/method-not-allowed"
    assert problem["detail"] == "/api/v1/batches answers POST, not GET."


def test_a_path_the_api_does_not_have_is_a_problem_not_the_dashboards_page(api_as, marketer):
    # It was the dashboard's 404 page, in HTML.
    for path in ("/nothing-here", "/campaigns/spring-1/more", "/batches/"):
        answer = api_as(marketer).get(path)
        assert answer.status_code == 404, path
        assert answer["Content-Type"] == "application/problem+json"
        assert answer.json()["detail"] == (
            f"The API has no /api/v1{path}: its operations are listed at /api/v1/docs."
        )
    assert api_as(marketer).get("/campaigns").status_code == 200
