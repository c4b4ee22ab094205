"""Baseline: the original design, ported to Python as it was planned to go multi-user.

A `SessionManager` dict of sessions, each guarded by its own `asyncio.Lock` that is taken
for every read and every change of its state, the `WebStateResponse` shape with
`HH:MM:SS` timestamps, and the original's SSE stream: every connection loops forever,
takes the lock, serializes the WHOLE state and sends it, then sleeps 100 ms, whether or
not anything changed. That polling is the flaw this baseline exists to measure, so it is
kept; serialization uses orjson, which is generous to the original (it used serde_json).
The reply runs as one asyncio task per turn (the original advanced only while polled;
a task is kinder to it) and appends each token to the last agent message.

Run from the repository root: `python -m bench.baselines.seed_polling --port 8101`.
Endpoints: GET /health, GET /api/state?session_id=, POST /api/chat,
POST /api/interrupt, GET /api/chat/stream?session_id=.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

from bench.baselines.script import reply_template, tokens, tokens_per_second
from bench.baselines.serve import serve

POLL_SECONDS = 0.1


@dataclass
class Message:
    sender: str
    content: str
    timestamp: str = field(default_factory=lambda: datetime.now().strftime("%H:%M:%S"))
    is_streaming: bool = False


@dataclass
class Session:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    messages: list[Message] = field(default_factory=list)
    is_processing: bool = False
    task: asyncio.Task[None] | None = None

    def state(self) -> dict[str, Any]:
        """The original `WebStateResponse`; call with the lock held."""
        return {
            "messages": self.messages,
            "is_processing": self.is_processing,
            "is_loading": False,
            "is_connecting_mcp": False,
            "missing_api_key": False,
            "pending_wallet_tx": None,
            "network": "testnet",
        }


class SessionManager:
    """Sessions by id, created on first use and never evicted (as in a benchmark run)."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}

    def get_or_create(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = Session()
        return session


class ChatIn(BaseModel):
    session_id: str
    message: str


class InterruptIn(BaseModel):
    session_id: str


manager = SessionManager()
app = FastAPI()


def state_response(session: Session) -> Response:
    """The session's state as JSON; call with the lock held."""
    return Response(orjson.dumps(session.state()), media_type="application/json")


async def run_turn(session: Session, reply: Message, text: str) -> None:
    """Stream the scripted reply into the agent message, one locked append per token."""
    try:
        async for token in tokens(reply_template().replace("{message}", text), tokens_per_second()):
            async with session.lock:
                reply.content += token
    except asyncio.CancelledError:
        async with session.lock:
            session.messages.append(Message("system", "Interrupted by user."))
        raise
    finally:
        async with session.lock:
            reply.is_streaming = False
            session.is_processing = False


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    return "OK"


@app.get("/api/state")
async def get_state(session_id: str) -> Response:
    session = manager.get_or_create(session_id)
    async with session.lock:
        return state_response(session)


@app.post("/api/chat")
async def chat(body: ChatIn) -> Response:
    session = manager.get_or_create(body.session_id)
    async with session.lock:
        if session.is_processing:
            return JSONResponse({"error": {"code": "session_busy", "message": "busy"}}, 409)
        reply = Message("agent", "", is_streaming=True)
        session.messages += [Message("user", body.message), reply]
        session.is_processing = True
        session.task = asyncio.create_task(run_turn(session, reply, body.message))
        return state_response(session)


@app.post("/api/interrupt")
async def interrupt(body: InterruptIn) -> Response:
    session = manager.get_or_create(body.session_id)
    task = session.task
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait([task])
    async with session.lock:
        return state_response(session)


@app.get("/api/chat/stream")
async def stream(session_id: str) -> StreamingResponse:
    session = manager.get_or_create(session_id)

    async def poll() -> AsyncIterator[bytes]:
        while True:
            async with session.lock:
                frame = b"data: " + orjson.dumps(session.state()) + b"\n\n"
            yield frame
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(poll(), media_type="text/event-stream")


if __name__ == "__main__":
    serve(app, __doc__.splitlines()[0], 8101)
