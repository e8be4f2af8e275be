"""The API's operations, one module per subject, gathered into one NinjaAPI."""

from ninja import NinjaAPI

api = NinjaAPI(
    title="mokudash API",
    version="1",
    urls_namespace="api",
    openapi_url="/openapi.json",
    docs_url="/docs",
)
