"""The API's docs page in a real browser: Swagger UI from our own static files (no CDN, no
network), under the Content-Security-Policy, listing every operation."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser


def test_the_api_docs_page_shows_every_operation_offline(browser_page, live_server):
    from api.routes import api

    page = browser_page
    outside: list[str] = []

    def watch(request) -> None:
        if not request.url.startswith((live_server.url, "data:")):
            outside.append(request.url)

    page.on("request", watch)
    page.goto("/api/v1/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    operations = sum(len(methods) for methods in api.get_openapi_schema()["paths"].values())
    assert page.locator(".opblock").count() == operations
    assert page.get_by_text("/api/v1/batches/{batch_id}/approve").count() == 1
    assert outside == []
    screenshot(page, "desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    screenshot(page, "phone")
