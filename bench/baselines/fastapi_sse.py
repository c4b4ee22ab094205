"""Baseline: what a developer would write today with FastAPI's native SSE (`fastapi.sse`).

Push, not polling: each session keeps a list of typed events and one `asyncio.Condition`
that wakes its subscribers when an event is appended. The stream is the idiomatic path
operation, an async generator with `response_class=EventSourceResponse` that yields a
`ServerSentEvent` per event, whose data is a pydantic model; FastAPI serializes it per
subscriber and adds its own keep-alive (`: ping` after 15 s without an event, run by two
tasks per stream), all left as the library ships it: this measures the library as
people use it. `Last-Event-ID` resumes after that sequence number.

Run from the repository root: `python -m bench.baselines.fastapi_sse --port 8102`.
Endpoints: GET /health, POST /api/chat, POST /api/interrupt,
GET /api/sessions/{session_id}/events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel

from bench.baselines.script import reply_template, tokens, tokens_per_second
from bench.baselines.serve import serve


class MessageCreated(BaseModel):
    id: str
    sender: str


class MessageDelta(BaseModel):
    id: str
    delta: str


class MessageCompleted(BaseModel):
    id: str
    status: str


@dataclass
class Event:
    seq: int
    type: str
    data: BaseModel


@dataclass
class Session:
    events: list[Event] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    replies: int = 0
    task: asyncio.Task[None] | None = None

    async def append(self, type_: str, data: BaseModel) -> None:
        async with self.changed:
            self.events.append(Event(len(self.events) + 1, type_, data))
            self.changed.notify_all()


class ChatIn(BaseModel):
    session_id: str
    message: str


class InterruptIn(BaseModel):
    session_id: str


sessions: dict[str, Session] = {}
app = FastAPI()


def get_or_create(session_id: str) -> Session:
    session = sessions.get(session_id)
    if session is None:
        session = sessions[session_id] = Session()
    return session


async def run_turn(session: Session, message_id: str, text: str) -> None:
    """Stream the scripted reply as `message.delta` events between created and completed."""
    status = "interrupted"
    try:
        await session.append("message.created", MessageCreated(id=message_id, sender="agent"))
        async for token in tokens(reply_template().replace("{message}", text), tokens_per_second()):
            await session.append("message.delta", MessageDelta(id=message_id, delta=token))
        status = "done"
    finally:
        await session.append("message.completed", MessageCompleted(id=message_id, status=status))


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    return "OK"


@app.post("/api/chat")
async def chat(body: ChatIn) -> dict[str, bool]:
    session = get_or_create(body.session_id)
    if session.task is not None and not session.task.done():
        raise HTTPException(409, "session_busy")
    session.replies += 1
    session.task = asyncio.create_task(run_turn(session, f"m{session.replies}", body.message))
    return {"success": True}


@app.post("/api/interrupt")
async def interrupt(body: InterruptIn) -> dict[str, bool]:
    task = get_or_create(body.session_id).task
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait([task])
    return {"success": True}


@app.get("/api/sessions/{session_id}/events", response_class=EventSourceResponse)
async def events(
    session_id: str, last_event_id: Annotated[str | None, Header()] = None
) -> AsyncIterable[ServerSentEvent]:
    session = get_or_create(session_id)
    seen = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    while True:
        async with session.changed:
            while len(session.events) <= seen:
                await session.changed.wait()
            batch = session.events[seen:]
        seen += len(batch)
        for event in batch:
            yield ServerSentEvent(event=event.type, id=str(event.seq), data=event.data)


if __name__ == "__main__":
    serve(app, __doc__.splitlines()[0], 8102)
