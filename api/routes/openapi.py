"""What the OpenAPI document says beyond the type hints: the error answers (problem+json),
the Idempotency-Key header, CSV bodies."""

from __future__ import annotations

from typing import Any

from api.errors import Problem

# The errors any call may answer (the door, api/urls.py, refuses a declared body over the limit
# whatever the method: 413); a POST may also be refused for its key or its state.
ERRORS: dict[int, Any] = {
    401: Problem,
    403: Problem,
    404: Problem,
    413: Problem,
    422: Problem,
    429: Problem,
}
POST_ERRORS: dict[int, Any] = {**ERRORS, 409: Problem}

CSV: dict[str, Any] = {
    "responses": {
        200: {
            "description": "CSV, UTF-8",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
}


def idempotency_header() -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Any unique string (a UUID). Sent again with the same body, "
                "the first answer is given again (header Idempotent-Replayed: true) and "
                "nothing is done twice; with another body, 422. Kept for 48 hours.",
            }
        ]
    }
