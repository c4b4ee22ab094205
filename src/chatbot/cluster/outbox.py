"""Ships what one event-loop step appended to the sessions this worker holds, in one batch.

`SharedLog.append` stays synchronous (number, serialize, keep, hand to local streams);
the frame also joins the outbox. The outbox's one task then sends everything queued
since its last trip as a single pipeline: per session, one fenced script call that adds
the frames to the session's Redis Stream and publishes them to the workers streaming it.
Turn markers (which sessions run a turn, for failover) travel in the same pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from chatbot.cluster.keys import Keys
from chatbot.cluster.link import REDIS_DOWN, Link
from chatbot.cluster.scripts import APPEND
from chatbot.sessions.events import MemoryEventLog

log = logging.getLogger("chatbot.cluster")


class Outbox:
    """Frames and turn markers waiting for their trip to Redis."""

    def __init__(
        self,
        link: Link,
        keys: Keys,
        token: str,
        *,
        buffer: int,
        events_ttl_ms: int,
        lease_ms: int,
        on_lost: Callable[[str], None],
    ) -> None:
        self.link = link
        self.keys = keys
        self.token = token
        self.buffer = buffer
        self.events_ttl_ms = events_ttl_ms
        self.lease_ms = lease_ms
        self.on_lost = on_lost
        self._append = link.redis.register_script(APPEND)
        self._events: dict[str, list[Any]] = {}
        self._turns: dict[str, bool] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task that makes the trips."""
        self._task = asyncio.create_task(self._run(), name="cluster-outbox")

    async def stop(self) -> None:
        """Send what is queued (when Redis answers), then stop."""
        try:
            await asyncio.wait_for(self.drain(), timeout=2)
        except TimeoutError:
            log.warning("events not shipped at shutdown: redis is unavailable")
        if self._task is not None:
            self._task.cancel()

    async def drain(self) -> None:
        """Return once everything queued so far has reached Redis."""
        while self._events or self._turns or not self._idle.is_set():
            self._wake.set()
            await self._idle.wait()
            await asyncio.sleep(0)

    def add(self, session_id: str, seq: int, frame: bytes) -> None:
        """Queue one frame of a session this worker holds."""
        batch = self._events.get(session_id)
        if batch is None:
            self._events[session_id] = [seq, frame]
        else:
            batch += (seq, frame)
        if not self._wake.is_set():
            self._wake.set()

    def turn(self, session_id: str, running: bool) -> None:
        """Mark a session's turn as running (another worker recovers it if we die) or not."""
        self._turns[session_id] = running
        if not self._wake.is_set():
            self._wake.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            events, self._events = self._events, {}
            turns, self._turns = self._turns, {}
            if not events and not turns:
                continue
            self._idle.clear()
            try:
                results = await self._send(events, turns)
            except REDIS_DOWN as error:
                self.link.lost(error)
                self._requeue(events, turns)
                self._idle.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                self._wake.set()
                continue
            backoff = 0.1
            self._idle.set()
            for session_id in results:
                self.on_lost(session_id)

    async def _send(self, events: dict[str, list[Any]], turns: dict[str, bool]) -> list[str]:
        """One round trip: every session's frames in one script call, then turn markers.

        Returns the sessions whose lease another worker has taken."""
        keys = self.keys
        pipe = self.link.redis.pipeline(transaction=False)
        sessions = list(events)
        if sessions:
            names: list[str] = []
            args: list[Any] = [self.token, self.buffer, self.events_ttl_ms]
            for session_id in sessions:
                names += (keys.lease(session_id), keys.events(session_id), keys.channel(session_id))
                batch = events[session_id]
                args.append(len(batch) // 2)
                args += batch
            await self._append(keys=names, args=args, client=pipe)
        until = int(time.time() * 1000) + self.lease_ms
        for session_id, running in turns.items():
            if running:
                pipe.zadd(keys.turns, {session_id: until})
            else:
                pipe.zrem(keys.turns, session_id)
        results: list[Any] = await pipe.execute()
        return [sessions[index - 1] for index in results[0]] if sessions else []

    def _requeue(self, events: dict[str, list[Any]], turns: dict[str, bool]) -> None:
        """Put a failed trip back in front of what came since, at most EVENT_BUFFER_SIZE each."""
        for session_id, batch in events.items():
            merged = batch + self._events.get(session_id, [])
            self._events[session_id] = merged[-2 * self.buffer :]
        for session_id, running in turns.items():
            self._turns.setdefault(session_id, running)


class SharedLog(MemoryEventLog):
    """A held session's event log: kept here for resume, and shipped to the cluster."""

    __slots__ = ("_outbox", "_session_id")

    def __init__(self, session_id: str, capacity: int, seq: int, outbox: Outbox) -> None:
        super().__init__(capacity, seq)
        self._session_id = session_id
        self._outbox = outbox

    def append(self, event_type: str, data: Any) -> tuple[int, bytes]:
        """Number, serialize and keep the event here, and queue it for Redis."""
        seq, frame = super().append(event_type, data)
        self._outbox.add(self._session_id, seq, frame)
        return seq, frame
