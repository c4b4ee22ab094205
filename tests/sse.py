"""A small SSE client for tests: frames as they arrive, and a view that replays them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    """One SSE event as the wire carried it."""

    id: str | None
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class SSEReader:
    """Reads events from a streaming response; keep-alive comments are counted apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []
        self._lines = response.aiter_lines()
        self.ended = False

    async def next(self, timeout: float = 10.0) -> Event:
        """The next event; raises EOFError when the server ends the stream."""
        return await asyncio.wait_for(self._read_event(), timeout)

    async def _read_event(self) -> Event:
        event_id: str | None = None
        name: str | None = None
        data: list[str] = []
        async for line in self._lines:
            if line == "":
                if data or name or event_id:
                    return Event(event_id, name, "\n".join(data))
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "id":
                event_id = value
            elif key == "event":
                name = value
            elif key == "data":
                data.append(value)
        self.ended = True
        raise EOFError("stream ended")

    async def until(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> list[Event]:
        """Events up to and including the first one that matches."""
        seen: list[Event] = []

        async def read() -> list[Event]:
            while True:
                event = await self._read_event()
                seen.append(event)
                if predicate(event):
                    return seen

        return await asyncio.wait_for(read(), timeout)

    async def rest(self, timeout: float = 10.0) -> list[Event]:
        """Every event until the server ends the stream."""
        events: list[Event] = []
        try:
            while True:
                events.append(await self.next(timeout))
        except EOFError:
            return events


@asynccontextmanager
async def open_sse(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SSEReader]:
    """Open an SSE stream and check that it is one."""
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SSEReader(response)


def is_idle_state(event: Event) -> bool:
    """A typed `state` event saying the turn is over."""
    return event.event == "state" and event.json()["is_processing"] is False


@dataclass
class EventsView:
    """Rebuilds a session's messages from a typed events stream, checking seq order."""

    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    last_seq: int = -1
    deltas: dict[str, list[str]] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        seq = int(event.id) if event.id is not None else None
        data = event.json()
        if event.event == "snapshot":
            assert seq is not None
            self.messages = {m["id"]: m for m in data["messages"]}
            self.flags = {k: v for k, v in data.items() if k != "messages"}
            self.last_seq = seq
            return
        assert seq == self.last_seq + 1, f"gap or duplicate: {self.last_seq} then {seq}"
        self.last_seq = seq
        if event.event in ("message.created", "message.completed", "tool.call", "tool.result"):
            message = data["message"]
            self.messages[message["id"]] = message
        elif event.event == "message.delta":
            self.messages[data["id"]]["content"] += data["delta"]
            self.deltas.setdefault(data["id"], []).append(data["delta"])
        elif event.event == "state":
            self.flags.update(data)

    def contents(self) -> list[tuple[str, str]]:
        return [(m["sender"], m["content"]) for m in self.messages.values()]
