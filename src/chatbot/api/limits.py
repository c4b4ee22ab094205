"""Request-size limit, enforced before a body is parsed.

FastAPI's own `max_body_size` answers a declared oversize body with a plain-text
413, outside the error envelope every client of this API relies on; this does not.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.api.errors import error_response

_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BodySizeLimit:
    """Answers 413 for bodies over MAX_BODY_BYTES, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"The request body is larger than {max_bytes} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, "body_too_large", self.message)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, counted, send)
