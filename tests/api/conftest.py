"""The API's tests: a client that signs each request with a key of one of the cast."""

from __future__ import annotations

import json

import pytest

from api.services import api_key_create
from campaigns.models import CampaignAccess
from tests.worker import celery_worker, isolated_broker  # noqa: F401  (fixtures)


class ApiClient:
    """Django's test client, speaking JSON with `Authorization: Bearer <key>`."""

    def __init__(self, client, secret: str):
        self.client = client
        self.secret = secret

    def _headers(self, key: str | None, headers: dict | None) -> dict:
        sent = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        if key:
            sent["Idempotency-Key"] = key
        return {**sent, **(headers or {})}

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get("/api/v1" + path, params or {}, headers=self._headers(None, headers))

    def post(self, path: str, body=None, *, key: str | None = None, headers: dict | None = None):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body or {})
        return self.client.post(
            "/api/v1" + path,
            data,
            content_type="application/json",
            headers=self._headers(key, headers),
        )


@pytest.fixture
def api_as(client):
    """api_as(user, scopes="send,read,reports") -> an ApiClient with a fresh key of theirs."""

    def make(user, scopes: str = "send,read,reports", **kw) -> ApiClient:
        new = api_key_create(user=user, name="test", scopes=scopes, **kw)
        return ApiClient(client, new.secret)

    return make


def only(user, *campaigns) -> None:
    """The person may see these campaigns and no other."""
    access, _ = CampaignAccess.objects.get_or_create(user=user)
    access.all_campaigns = False
    access.save()
    access.campaigns.set(campaigns)


def one(recipient: str = "ann@example.com", name: str = "Ann", **kw) -> dict:
    return {
        "campaign": "spring-1",
        "mode": "email",
        "recipients": [{"recipient": recipient, "name": name}],
        **kw,
    }
