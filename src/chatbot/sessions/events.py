"""A session's numbered event log and the outboxes of the streams that follow it.

Each event is serialized to its SSE frame once, when it happens; every subscriber
gets the same `bytes`. Nothing here awaits, so appending and fanning out happen in
one step of the event loop and no subscriber can ever see a gap or a duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

import orjson

KEEPALIVE_FRAME = b": keep-alive\n\n"

Sink = Callable[[bytes], bool]
"""Writes a frame to the socket at once, or returns False when it cannot right now."""


def event_frame(seq: int, event_type: str, data: Any) -> bytes:
    """The SSE frame of one typed event; `id:` is its sequence number."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event_type.encode(), orjson.dumps(data))


def state_frame(data: Any) -> bytes:
    """The legacy stream's unnamed frame carrying the whole state."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


class EventLog(Protocol):
    """A session's numbered events: the port the session appends to and streams resume from.

    `append` numbers and serializes at once and never awaits, so a session's changes and
    their fan-out stay in one event-loop step; an implementation that shares the log with
    other processes ships what a step appended afterwards, in one batch.
    """

    @property
    def seq(self) -> int:
        """The number of the newest event (0 before the first)."""

    def append(self, event_type: str, data: Any) -> tuple[int, bytes]:
        """Number and serialize an event, keep it for replay, and return its frame."""

    def since(self, last_seq: int) -> list[bytes] | None:
        """Frames after `last_seq`, or None when they are no longer all kept."""


class MemoryEventLog:
    """The in-process `EventLog`: a counter plus a ring buffer of recent frames.

    The buffer holds the frames alone, the newest numbered `seq` and each one before it
    one less: a `(seq, frame)` pair per event was the one container a streamed token
    left for the garbage collector to track, and at 20,000 tokens/s those pairs set off
    most young collections (docs/BENCHMARKS.md).
    """

    __slots__ = ("_frames", "seq")

    def __init__(self, capacity: int, seq: int = 0) -> None:
        self.seq = seq
        self._frames: deque[bytes] = deque(maxlen=capacity)

    def append(self, event_type: str, data: Any) -> tuple[int, bytes]:
        """Number and serialize an event, keep it for replay, and return its frame."""
        frame = event_frame(self.seq + 1, event_type, data)  # may raise: number only after
        self.seq += 1
        self._frames.append(frame)
        return self.seq, frame

    def add(self, seq: int, frame: bytes) -> None:
        """Keep a frame numbered elsewhere (a cluster mirror's copy of another worker's log)."""
        if seq != self.seq + 1:
            self._frames.clear()  # a jump (a resync): older frames no longer lead up to it
        self.seq = seq
        self._frames.append(frame)

    def since(self, last_seq: int) -> list[bytes] | None:
        """Frames after `last_seq`, or None when they are no longer all in the buffer."""
        if last_seq > self.seq or last_seq < 0:
            return None
        wanted = self.seq - last_seq
        if wanted > len(self._frames):
            return None
        return list(self._frames)[len(self._frames) - wanted :]


class StreamKind(StrEnum):
    """The typed events stream or the original full-state stream."""

    EVENTS = "events"
    LEGACY = "legacy"


class Subscriber:
    """One open SSE connection's outbox: bounded, woken on change, drained in batches.

    A typed-events subscriber that falls `limit` frames behind is not allowed to slow
    anyone down: its backlog is dropped and it is sent a fresh snapshot instead. A legacy
    subscriber only ever holds the newest full state, so it is bounded by construction.

    With a `sink`, a frame that finds the writer idle and nothing queued goes straight
    to the socket: no wake-up, no task step. Anything else (a full socket buffer, a
    batch being written, a resync) queues, and the writer drains it in order.
    """

    __slots__ = (
        "_closing",
        "_frames",
        "_keepalive",
        "_state",
        "_waiter",
        "aborted",
        "kind",
        "last_write",
        "limit",
        "owner",
        "resync",
        "session_id",
        "sink",
        "snapshot",
    )

    def __init__(
        self,
        session_id: str,
        kind: StreamKind,
        limit: int,
        snapshot: Callable[[], bytes],
    ) -> None:
        self.session_id = session_id
        self.kind = kind
        self.limit = limit
        self.snapshot = snapshot
        self.owner = ""
        self.resync = False
        self.aborted = False
        self.last_write = time.monotonic()
        self.sink: Sink | None = None
        self._frames: deque[bytes] = deque()
        self._state: bytes | None = None
        self._keepalive = False
        self._closing = False
        self._waiter: asyncio.Future[None] | None = None

    def push(self, frame: bytes) -> None:
        """Write one event frame, or queue it, or switch to a resync when the queue is full."""
        if self._closing or self._direct(frame):
            return
        if len(self._frames) >= self.limit:
            self._frames.clear()
            self.resync = True
        else:
            self._frames.append(frame)
        self._wake()

    def prime(self, frames: list[bytes]) -> None:
        """Queue the frames a new connection starts with (snapshot or replay), unbounded."""
        self._frames.extend(frames)
        self._wake()

    def push_state(self, frame: bytes) -> None:
        """Replace the pending full-state frame (legacy streams coalesce this way)."""
        if not (self._closing or self._direct(frame)):
            self._state = frame
            self._wake()

    def start_over(self) -> None:
        """Drop the backlog and send a fresh snapshot next (the log it followed jumped)."""
        self._frames.clear()
        self.resync = True
        self._wake()

    def keepalive(self) -> None:
        """Send a keep-alive comment now, or with the next write."""
        if not self._direct(KEEPALIVE_FRAME):
            self._keepalive = True
            self._wake()

    def close(self) -> None:
        """End the stream once everything already queued has been written."""
        self._closing = True
        self._wake()

    def abort(self) -> None:
        """End the stream now; the client has gone."""
        self.aborted = True
        self._wake()

    async def next_batch(self) -> bytes | None:
        """Wait for output and return all of it at once; None when the stream is over."""
        while not self.aborted:
            if self.resync:
                self.resync = False
                self._frames.clear()
                self._frames.append(self.snapshot())
            if self._frames or self._state is not None:
                out = b"".join(self._frames)
                self._frames.clear()
                if self._state is not None:
                    out += self._state
                    self._state = None
                self._keepalive = False
                return out
            if self._keepalive:
                self._keepalive = False
                return KEEPALIVE_FRAME
            if self._closing:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return None

    def _direct(self, frame: bytes) -> bool:
        waiter = self._waiter  # set and pending: the writer is parked with nothing queued
        if self.sink is None or waiter is None or waiter.done() or self._closing:
            return False
        if self._frames or self._state is not None or self.resync or not self.sink(frame):
            return False
        self.last_write = time.monotonic()
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
