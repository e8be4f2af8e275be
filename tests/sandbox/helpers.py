"""Small helpers for the sandbox tests: raw HTTP calls and a look at the XML they return."""

from __future__ import annotations

import re

import requests
from defusedxml import ElementTree

TIMEOUT = (5, 30)
DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")

# The error table of docs/mokugift-api.md, copied here on purpose: the sandbox must match the
# document, not itself.
DOCUMENTED_ERRORS = {
    100: "Incorrect HTTP Method",
    101: "Invalid campaign ID",
    102: "Incorrect Passcode",
    103: "Campaign disabled",
    104: "Campaign is expired (by date or budget)",
    105: "Lack of moku-coins",
    110: "Internal error",
    111: "Missing recipient email/ID",
    112: "Invalid email",
    113: "Invalid parameters",
    114: "Over max. number of rewards",
}


def post(sandbox, path: str, **data) -> requests.Response:
    return requests.post(sandbox.api_url + path, data=data, timeout=TIMEOUT)


def get(sandbox, path: str) -> requests.Response:
    return requests.get(sandbox.api_url + path, timeout=TIMEOUT)


def parse(response: requests.Response):
    """The root `result` of an API answer, after the checks every answer must pass."""
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/xml")
    assert "charset=utf-8" in response.headers["Content-Type"]
    root = ElementTree.fromstring(response.content)
    assert root.tag == "result"
    assert root.find("version").text == "1.0"
    return root


def tags(element) -> list[str]:
    return [child.tag for child in element]


def assert_failed(response: requests.Response, code: int, *, transaction: bool = False):
    root = parse(response)
    expected = ["version", "status", "transaction_id", "error"] if transaction else None
    assert tags(root) == (expected or ["version", "status", "error"])
    assert root.findtext("status") == "Failed"
    error = root.find("error")
    assert tags(error) == ["code", "description"]
    assert int(error.findtext("code")) == code
    assert error.findtext("description") == DOCUMENTED_ERRORS[code]
    return root
