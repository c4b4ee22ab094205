"""The two SSE endpoints, written on the leanest ASGI path.

Frames are pre-serialized `bytes` shared by every subscriber (see sessions/events.py);
this module only moves them to the socket: no pydantic model per event and no
per-connection timer (the registry's one keep-alive walk covers every stream). Under
uvicorn's httptools server a frame is written to the socket as it is published, with no
task woken for it (`direct_writer`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from chatbot.api.errors import chatbot_error_response
from chatbot.api.params import (
    PATH_SESSION_ID,
    QUERY_SESSION_ID,
    limit_key,
    manager_of,
    required_session_id,
)
from chatbot.api.schemas import EVENT_TYPES, errors_doc, sse_doc
from chatbot.errors import ChatbotError, InvalidLastEventId
from chatbot.sessions.events import Sink, StreamKind, Subscriber
from chatbot.sessions.manager import SessionManager

router = APIRouter(tags=["streams"])

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStream(Response):
    """Writes a subscriber's batches until it ends or the client goes away."""

    def __init__(self, manager: SessionManager, subscriber: Subscriber) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = list(_HEADERS)
        self.manager = manager
        self.subscriber = subscriber

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.subscriber
        watcher = asyncio.ensure_future(_until_disconnect(receive))
        watcher.add_done_callback(lambda _: subscriber.abort())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            subscriber.sink = direct_writer(scope.get(SERVER_SEND, send))
            while (chunk := await subscriber.next_batch()) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                subscriber.last_write = time.monotonic()
            if not subscriber.aborted:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write; uvicorn reports it this way
        finally:
            subscriber.sink = None
            watcher.cancel()
            self.manager.close_stream(subscriber)


def direct_writer(send: Send) -> Sink | None:
    """A synchronous writer of body chunks to the socket behind uvicorn's httptools `send`.

    Written through `send`, every frame woke the stream's task and ran uvicorn's
    coroutine: about a third of a token's delivery cost (docs/BENCHMARKS.md). This
    writes the same chunked encoding to the same transport, and declines (the frame is
    then queued for `send`) whenever `send` would not write at once: while the socket's
    buffer is full, or once the response is over. None for any other server or response;
    tests/test_stream_writer.py fails if a uvicorn upgrade takes this path away.
    """
    cycle = getattr(send, "__self__", None)
    if not isinstance(cycle, RequestResponseCycle) or cycle.chunked_encoding is not True:
        return None
    flow, transport = cycle.flow, cycle.transport
    write = transport.write

    def write_chunk(frame: bytes) -> bool:
        if flow.write_paused or cycle.response_complete or transport.is_closing():
            return False
        write(b"%x\r\n%s\r\n" % (len(frame), frame))
        return True

    return write_chunk


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _last_event_id(request: Request, given: str | None) -> int | None:
    raw = given if given is not None else request.headers.get("last-event-id")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidLastEventId("Last-Event-ID must be the decimal seq of an event.")
    return int(raw)


_EVENTS_EXAMPLE = (
    'id: 3\nevent: snapshot\ndata: {"session_id":"s-1","seq":3,"messages":[…],…}\n\n'
    'id: 4\nevent: message.created\ndata: {"message":{"id":"m_1","sender":"agent",…}}\n\n'
    'id: 5\nevent: message.delta\ndata: {"id":"m_1","delta":"You"}\n\n'
)
_LEGACY_EXAMPLE = 'data: {"session_id":"s-1","seq":5,"messages":[…],"is_processing":true,…}\n\n'


@router.get(
    "/api/sessions/{session_id}/events",
    summary="Typed, numbered, resumable event stream",
    response_class=Response,
    responses={
        **sse_doc(
            "A `snapshot` event first, then typed deltas: `message.created`, `message.delta`, "
            "`message.completed`, `tool.call`, `tool.result`, `state`, `wallet.request`, "
            "`wallet.resolved`, `session.closed`. "
            "`id:` is the event's seq; reconnect with `Last-Event-ID` (or `?last_event_id=`) "
            "to get exactly the missed events, or a fresh snapshot when they are too old. "
            "A keep-alive comment comes every SSE_KEEPALIVE_SECONDS of silence.",
            _EVENTS_EXAMPLE,
            EVENT_TYPES,
        ),
        **errors_doc(400, 401, 404, 429, 503),
    },
)
async def events(
    request: Request,
    session_id: str = PATH_SESSION_ID,
    last_event_id: str | None = Query(
        default=None,
        description="The seq of the last event received (or the `Last-Event-ID` header).",
        json_schema_extra={"pattern": "^[0-9]{1,18}$"},
    ),
) -> Response:
    """Stream a session's events; an unknown session streams an empty snapshot and waits."""
    session_id = await required_session_id(request, session_id)
    resume_from = _last_event_id(request, last_event_id)
    manager = manager_of(request)
    subscriber = await manager.open_stream(
        session_id, StreamKind.EVENTS, resume_from, await limit_key(request)
    )
    return EventStream(manager, subscriber)


@router.get(
    "/api/chat/stream",
    summary="The original full-state stream",
    tags=["original API"],
    response_class=Response,
    responses={
        **sse_doc(
            "Unnamed events whose data is the full `WebStateResponse`: on connect and after "
            "changes (coalesced), never on a timer.",
            _LEGACY_EXAMPLE,
            None,
        ),
        **errors_doc(400, 401, 404, 429, 503),
    },
)
async def legacy_stream(request: Request, session_id: str | None = QUERY_SESSION_ID) -> Response:
    """Stream the session's full state on every change; an unknown session waits."""
    manager = manager_of(request)
    subscriber = await manager.open_stream(
        await required_session_id(request, session_id),
        StreamKind.LEGACY,
        owner=await limit_key(request),
    )
    return EventStream(manager, subscriber)


LEGACY_PATH = "/api/chat/stream"
SERVER_SEND = "chatbot.server_send"
"""Where a stream's scope keeps the server's own `send`, unwrapped."""
EVENTS_PREFIX, EVENTS_SUFFIX = "/api/sessions/", "/events"


def serve_streams_first(app: FastAPI, cors: dict[str, Any]) -> None:
    """Answer the two stream paths ahead of the whole middleware stack, FastAPI's own too.

    Outermost, a stream's `send` is the server's own, which `direct_writer` needs.
    """
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: StreamRoutes(build(), cors)  # type: ignore[method-assign]


class StreamRoutes:
    """Serves the two stream paths ahead of the rest of the middleware stack.

    A stream lives for hours. Routed through the whole stack, it kept a suspended frame
    in every middleware and sent each frame, keep-alives included, through every
    middleware's `send` wrapper: about 27 KiB per idle stream and a third of the cost of
    writing an event (docs/BENCHMARKS.md). Here the same route functions answer, behind
    CORS only; any other request goes on down the stack.
    """

    def __init__(self, app: ASGIApp, cors: dict[str, Any]) -> None:
        self.app = app
        self.streams = CORSMiddleware(self._stream, **cors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and _is_stream(scope["path"]):
            scope[SERVER_SEND] = send  # CORS wraps `send` for cross-origin requests
            await self.streams(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path: str = scope["path"]
        try:
            if path == LEGACY_PATH:
                response = await legacy_stream(request, request.query_params.get("session_id"))
            else:
                session_id = path.removeprefix(EVENTS_PREFIX).removesuffix(EVENTS_SUFFIX)
                last = request.query_params.get("last_event_id")
                response = await events(request, session_id, last)
        except ChatbotError as error:
            response = chatbot_error_response(error)
        await response(scope, receive, send)


def _is_stream(path: str) -> bool:
    if path == LEGACY_PATH:
        return True
    if not (path.startswith(EVENTS_PREFIX) and path.endswith(EVENTS_SUFFIX)):
        return False
    session_id = path[len(EVENTS_PREFIX) : -len(EVENTS_SUFFIX)]
    return bool(session_id) and "/" not in session_id
