"""JSON responses rendered by orjson, which serializes the session dataclasses natively."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JsonResponse(Response):
    """`application/json` rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialize dataclasses, enums and plain data in one pass."""
        return orjson.dumps(content)


def session_response(state: dict[str, Any], status_code: int = 200) -> JsonResponse:
    """A state response that also names its session in the `X-Session-Id` header."""
    return JsonResponse(state, status_code, headers={"X-Session-Id": state["session_id"]})
