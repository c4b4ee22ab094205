"""Ships the events of the sessions this worker holds to Redis, many sessions per trip.

`SharedLog.append` stays synchronous (number, serialize, keep, hand to local streams);
the frame also joins the outbox. The outbox's one task then sends everything queued
since its last trip as one fenced script call that, per session, adds the frames to the
session's Redis Stream and publishes them to the workers streaming it. Turn markers
(which sessions run a turn, for failover) follow in a pipeline.

Each frame is written in Redis's wire protocol once, as it joins the outbox, and each
session's key names once per session: a trip only joins what is ready
(docs/BENCHMARKS.md has what that saved per token).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError

from chatbot.cluster.keys import Keys
from chatbot.cluster.link import REDIS_DOWN, Link
from chatbot.cluster.scripts import APPEND
from chatbot.sessions.events import MemoryEventLog

log = logging.getLogger("chatbot.cluster")
LINGER_SECONDS = 0.002
"""How long a trip waits for more tokens once the first is queued. A trip's fixed costs (a
wakeup and a write in Redis, a wakeup in each worker following one of its sessions) are
paid per trip, and at light load a trip would carry a handful of frames; 2 ms of frames
cost streams on other workers 2 ms (docs/BENCHMARKS.md). Any other event (a turn's end,
a state change) and `drain` send the trip at once: they are rare, and someone waits."""
LINGERING = "message.delta"
"""The one event type a trip lingers for: a token."""


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
        self.buffer = buffer
        self.lease_ms = lease_ms
        self.on_lost = on_lost
        # Called by its SHA in the pipeline, not as a registered Script: redis-py asks
        # `SCRIPT EXISTS` before every pipeline that holds a Script, one more round trip
        # per trip (docs/BENCHMARKS.md). A Redis that restarted empty answers NOSCRIPT once.
        self._sha = bulk(hashlib.sha1(APPEND.encode()).hexdigest().encode())
        # The script's first arguments (this worker's token, MAXLEN, the streams' expiry).
        self._head = b"".join(
            bulk(arg) for arg in (token.encode(), b"%d" % buffer, b"%d" % events_ttl_ms)
        )
        self._events: dict[SharedLog, list[bytes]] = {}
        self._turns: dict[str, bool] = {}
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # the trip goes without lingering
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
            self._hurry.set()
            await self._idle.wait()
            await asyncio.sleep(0)

    def add(self, log: SharedLog, seq: int, frame: bytes, *, hurry: bool = False) -> None:
        """Queue one frame of a session this worker holds: its entry id and the frame, in RESP.

        `hurry`: ship it without waiting `LINGER_SECONDS` for more."""
        entry = b"%d-0" % seq
        part = b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(entry), entry, len(frame), frame)
        batch = self._events.get(log)
        if batch is None:
            self._events[log] = [part]
        else:
            batch.append(part)
        if not self._wake.is_set():
            self._wake.set()
        if hurry:
            self._hurry.set()

    def turn(self, session_id: str, running: bool) -> None:
        """Mark a session's turn as running (another worker recovers it if we die) or not."""
        self._turns[session_id] = running
        if not self._wake.is_set():
            self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._idle.clear()  # `drain` waits from here, not from after the linger
            if not self._hurry.is_set():
                # A timer rather than a timeout: at light load the linger runs out on most
                # trips, and a timeout would raise and catch a cancellation each time.
                timer = loop.call_later(LINGER_SECONDS, self._hurry.set)
                await self._hurry.wait()
                timer.cancel()
            self._hurry.clear()
            self._wake.clear()
            events, self._events = self._events, {}
            turns, self._turns = self._turns, {}
            if not events and not turns:
                self._idle.set()
                continue
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

    async def _send(
        self, events: dict[SharedLog, list[bytes]], turns: dict[str, bool]
    ) -> list[str]:
        """Every session's frames in one script call, then the turn markers.

        Returns the sessions whose lease another worker has taken."""
        lost: list[str] = []
        if events:
            lost = await self._append(events)
        if turns:
            keys = self.keys
            pipe = self.link.redis.pipeline(transaction=False)
            until = int(time.time() * 1000) + self.lease_ms
            for session_id, running in turns.items():
                owned = keys.owned_turns(session_id)
                if running:
                    pipe.zadd(keys.turns, {session_id: until})
                    if owned is not None:
                        pipe.zadd(owned, {session_id: until})
                        pipe.pexpireat(owned, until)
                else:
                    pipe.zrem(keys.turns, session_id)
                    if owned is not None:
                        pipe.zrem(owned, session_id)
            await pipe.execute()
        return lost

    async def _append(self, events: dict[SharedLog, list[bytes]]) -> list[str]:
        """EVALSHA of APPEND, its request written out here rather than by redis-py.

        Its arguments are mostly frames already in bytes; redis-py's command packing and
        its `SCRIPT EXISTS` check before each pipeline were most of a worker's cost per
        shipped event (docs/BENCHMARKS.md). The reply goes through redis-py's parser.
        """
        logs = list(events)
        args = [self._head]
        parts = 3
        for log in logs:
            batch = events[log]
            args.append(bulk(b"%d" % len(batch)))
            args += batch
            parts += 1 + 2 * len(batch)
        command = b"".join(
            (
                b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + 3 * len(logs) + parts),
                self._sha,
                bulk(b"%d" % (3 * len(logs))),
                *(log.names for log in logs),
                *args,
            )
        )
        pool = self.link.redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            try:
                await connection.send_packed_command(command, check_health=False)
                lost = await connection.read_response()
            except NoScriptError:  # Redis restarted empty: load the script once, again
                await connection.send_packed_command(resp([b"SCRIPT", b"LOAD", APPEND.encode()]))
                await connection.read_response()
                await connection.send_packed_command(command, check_health=False)
                lost = await connection.read_response()
        finally:
            await pool.release(connection)
        return [logs[index - 1].session_id for index in lost]

    def _requeue(self, events: dict[SharedLog, list[bytes]], turns: dict[str, bool]) -> None:
        """Put a failed trip back in front of what came since, at most EVENT_BUFFER_SIZE each."""
        for log, batch in events.items():
            merged = batch + self._events.get(log, [])
            self._events[log] = merged[-self.buffer :]
        for session_id, running in turns.items():
            self._turns.setdefault(session_id, running)


def bulk(value: bytes) -> bytes:
    """One bulk string of Redis's wire protocol (RESP2)."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def resp(parts: list[bytes]) -> bytes:
    """One command in Redis's wire protocol: an array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(map(bulk, parts))


class SharedLog(MemoryEventLog):
    """A held session's event log: kept here for resume, and shipped to the cluster."""

    __slots__ = ("_outbox", "names", "session_id")

    def __init__(self, session_id: str, capacity: int, seq: int, outbox: Outbox) -> None:
        super().__init__(capacity, seq)
        self.session_id = session_id
        keys = outbox.keys
        # The script's keys for this session (lease, events stream, channel), in RESP.
        self.names = b"".join(
            bulk(name.encode())
            for name in (keys.lease(session_id), keys.events(session_id), keys.channel(session_id))
        )
        self._outbox = outbox

    def append(self, event_type: str, data: Any) -> tuple[int, bytes]:
        """Number, serialize and keep the event here, and queue it for Redis."""
        seq, frame = super().append(event_type, data)
        self._outbox.add(self, seq, frame, hurry=event_type != LINGERING)
        return seq, frame
