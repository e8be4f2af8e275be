"""The API's operations, one module per subject, gathered into one NinjaAPI.

Mounted at /api/v1/ (api/urls.py); the document is /api/v1/openapi.json, its page
/api/v1/docs (Swagger UI from django-ninja's own static files: no CDN)."""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI

from api.auth import ApiKeyAuth
from api.errors import CONTENT_TYPE, handlers
from api.routes import batches, campaigns, rewards

DESCRIPTION = """\
Send rewards and read what happened, with the same rules as the dashboard's pages: the key's
person's role and campaigns, approvals, budgets and schedules.

**Keys**: make one on your *API keys* page (or `manage.py api_key_create`) and send it as
`Authorization: Bearer mkd_…`. A key has scopes: `send`, `read`, `reports`.

**Retries are safe**: give every POST an `Idempotency-Key` (a UUID). The same key with the
same body answers the first answer again (`Idempotent-Replayed: true`) and sends nothing
twice; with another body it is refused.

**Errors** are `application/problem+json` (RFC 9457); `errors` names each field.
"""


class Api(NinjaAPI):
    def get_openapi_schema(self, **kwargs: Any) -> Any:
        """Error answers are documented as what they are, application/problem+json."""
        schema = super().get_openapi_schema(**kwargs)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, answer in operation.get("responses", {}).items():
                    content = answer.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        content[CONTENT_TYPE] = content.pop("application/json")
        return schema


api = Api(
    title="mokudash API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
    auth=ApiKeyAuth(),
)
for exception, handler in handlers().items():
    api.add_exception_handler(exception, handler)
api.add_router("/", campaigns.router)
api.add_router("/", batches.router)
api.add_router("/", rewards.router)
