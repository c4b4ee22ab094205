"""Sessions another worker holds, as this worker's streams see them.

A mirror starts from the holder's state (or an empty one for an id nobody has used
yet) and applies every frame the holder publishes, in `seq` order, exactly as the
client library's reducer does. A frame that arrives out of order waits while the
missing ones are read from the session's Redis Stream; when those are gone too, the
mirror starts over from the holder's state and its streams get a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson

from chatbot.model import redact
from chatbot.sessions.audience import Audience
from chatbot.sessions.events import (
    MemoryEventLog,
    Subscriber,
    event_frame,
    state_frame,
)

log = logging.getLogger("chatbot.cluster")

State = dict[str, Any]


def split_frames(payload: bytes) -> list[tuple[int, str, bytes, bytes]]:
    """(seq, type, data, frame) of each frame in a published batch."""
    out = []
    for chunk in payload.split(b"\n\n")[:-1]:  # data is one line of JSON: no blank lines
        id_line, event_line, data_line = chunk.split(b"\n", 2)
        out.append((int(id_line[4:]), event_line[7:].decode(), data_line[6:], chunk + b"\n\n"))
    return out


class Mirror:
    """The state and this worker's streams of one session held elsewhere."""

    def __init__(
        self,
        session_id: str,
        state: State,
        capacity: int,
        snapshot_messages: int,
        interval_ms: float,
        sent: Callable[[int], None],
    ) -> None:
        self.id = session_id
        self.state = state
        self.capacity = capacity
        self.snapshot_messages = snapshot_messages
        self.log = MemoryEventLog(capacity, state["seq"])
        self.audience = Audience(self.snapshot_frame, self.legacy_frame, interval_ms, sent)
        self.synced = False
        self.held: list[tuple[int, str, bytes, bytes]] = []
        self.closed = False
        self._legacy: tuple[int, bytes] | None = None

    # ---- what streams see (the manager's `Stage`) -----------------------------------

    def attach(self, subscriber: Subscriber) -> None:
        """Start delivering to `subscriber`."""
        self.audience.add(subscriber)

    def detach(self, subscriber: Subscriber) -> None:
        """Stop delivering to `subscriber`."""
        self.audience.discard(subscriber)

    def snapshot_frame(self) -> bytes:
        """A `snapshot` event of the mirrored state at its seq."""
        return event_frame(self.log.seq, "snapshot", self.state)

    def legacy_frame(self) -> bytes:
        """The mirrored state as a legacy frame, serialized once per seq."""
        if self._legacy is None or self._legacy[0] != self.log.seq:
            self._legacy = (self.log.seq, state_frame(self.state))
        return self._legacy[1]

    # ---- following the holder ---------------------------------------------------------

    def reset(self, state: State) -> None:
        """Start over from the holder's state; open streams get it as a snapshot."""
        self.state = state
        self.log = MemoryEventLog(self.capacity, state["seq"])
        self.audience.start_over()

    def receive(self, frames: list[tuple[int, str, bytes, bytes]]) -> bool:
        """Apply frames in order; False when one is missing (the caller fills the gap)."""
        if not self.synced or self.held:
            self.held.extend(frames)
            return not self.synced
        for index, (seq, event_type, data, frame) in enumerate(frames):
            if seq <= self.log.seq:
                continue  # already applied (a replay overlapping the live feed)
            if seq != self.log.seq + 1 and event_type != "snapshot":
                self.held.extend(frames[index:])
                return False
            self.apply(seq, event_type, orjson.loads(data), frame)
        return True

    def apply(self, seq: int, event_type: str, data: Any, frame: bytes) -> None:
        """One event, as the client's reducer applies it; then to this worker's streams."""
        state = self.state
        messages: list[State] = state["messages"]
        if event_type == "snapshot":
            self.state = data
        elif event_type in ("message.created", "tool.call"):
            messages.append(data["message"])
            if len(messages) > self.snapshot_messages:
                del messages[0]
                state["older_messages"] += 1
        elif event_type == "message.delta":
            for message in reversed(messages):
                if message["id"] == data["id"]:
                    message["content"] += data["delta"]
                    break
        elif event_type in ("message.completed", "tool.result"):
            done = data["message"]
            for index in range(len(messages) - 1, -1, -1):
                if messages[index]["id"] == done["id"]:
                    messages[index] = done
                    break
        elif event_type == "state":
            state.update(data)
        self.state["seq"] = seq
        self.log.add(seq, frame)
        self.audience.publish(frame)
        if event_type == "session.closed":
            self.closed = True
            self.audience.close()


class Mirrors:
    """Every mirror of this worker, fed by the pub/sub reader."""

    def __init__(
        self,
        *,
        empty_state: Callable[[str], State],
        holder_state: Callable[[str], Awaitable[State | None]],
        replay: Callable[[str, int], Awaitable[list[bytes] | None]],
        subscribe: Callable[[str], Awaitable[None]],
        unsubscribe: Callable[[str], Coroutine[Any, Any, None]],
        legacy_interval_ms: float,
        sent: Callable[[int], None],
        capacity: int,
        snapshot_messages: int,
    ) -> None:
        self._empty_state = empty_state
        self._holder_state = holder_state
        self._replay = replay
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._legacy_interval_ms = legacy_interval_ms
        self._sent = sent
        self._capacity = capacity
        self._snapshot_messages = snapshot_messages
        self._mirrors: dict[str, Mirror] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._mirrors)

    def get(self, session_id: str) -> Mirror | None:
        """This worker's mirror of the session, if it has one."""
        return self._mirrors.get(session_id)

    async def follow(self, session_id: str) -> Mirror:
        """The session's mirror, made and brought up to date on first use."""
        mirror = self._mirrors.get(session_id)
        if mirror is not None:
            ready = self._ready.get(session_id)
            if ready is not None:
                await asyncio.shield(ready)
            return mirror
        mirror = self._new(session_id)
        self._mirrors[session_id] = mirror
        ready = self._ready[session_id] = asyncio.get_running_loop().create_future()
        try:
            # Listen first, then read the state: a frame published in between is held,
            # never missed.
            await self._subscribe(session_id)
            await self._sync(mirror)
            ready.set_result(None)
        except BaseException as error:
            ready.set_exception(error)
            ready.exception()
            self._forget(session_id)
            raise
        finally:
            self._ready.pop(session_id, None)
        return mirror

    def _new(self, session_id: str) -> Mirror:
        return Mirror(
            session_id,
            self._empty_state(session_id),
            self._capacity,
            self._snapshot_messages,
            self._legacy_interval_ms,
            self._sent,
        )

    async def _sync(self, mirror: Mirror) -> None:
        state = await self._holder_state(mirror.id)
        if state is not None:
            mirror.reset(state)
        else:
            # Nobody holds it: an id not used yet (it waits, empty) or one just written
            # by a worker that went away (its frames are still in the stream).
            frames = await self._replay(mirror.id, 0)
            mirror.synced = True
            if frames:
                mirror.receive(split_frames(b"".join(frames)))
        mirror.synced = True
        self._release_held(mirror)

    def _release_held(self, mirror: Mirror) -> None:
        held, mirror.held = mirror.held, []
        held.sort(key=lambda frame: frame[0])
        if held and not mirror.receive(held):
            self._fill(mirror)

    def ingest(self, session_id: str, payload: bytes) -> None:
        """Frames the holder published; a gap sends for the missing ones."""
        mirror = self._mirrors.get(session_id)
        if mirror is None:
            return
        if not mirror.receive(split_frames(payload)) and mirror.synced:
            self._fill(mirror)
        if mirror.closed:
            self._forget(session_id)

    def _fill(self, mirror: Mirror) -> None:
        if any(task.get_name() == f"fill-{mirror.id}" for task in self._tasks):
            return
        task = asyncio.create_task(self._fill_gap(mirror), name=f"fill-{mirror.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill_gap(self, mirror: Mirror) -> None:
        try:
            frames = await self._replay(mirror.id, mirror.log.seq)
            held, mirror.held = mirror.held, []
            if frames is not None:
                mirror.receive(split_frames(b"".join(frames)))
            else:
                state = await self._holder_state(mirror.id)
                if state is not None:
                    mirror.reset(state)
                elif held:
                    # Gone everywhere (a holder that died unflushed): go on from the next
                    # frame there is; the worker taking over sends a snapshot anyway.
                    mirror.log = MemoryEventLog(self._capacity, min(f[0] for f in held) - 1)
                    mirror.audience.start_over()
            mirror.held = held + mirror.held
            self._release_held(mirror)
        except Exception:
            log.warning("mirror resync failed", extra={"session": redact(mirror.id)})

    def resync_all(self) -> None:
        """After the feed was cut (Redis restarted): check every mirror for missed frames."""
        for mirror in self._mirrors.values():
            if mirror.synced:
                self._fill(mirror)

    def closed(self, subscriber: Subscriber) -> None:
        """A stream on a mirror ended; a mirror nobody watches is dropped."""
        mirror = self._mirrors.get(subscriber.session_id)
        if mirror is None:
            return
        mirror.detach(subscriber)
        if not mirror.audience and subscriber.session_id not in self._ready:
            self._forget(subscriber.session_id)

    def take(self, session_id: str) -> Mirror | None:
        """Hand a mirror over: this worker now holds its session."""
        mirror = self._mirrors.get(session_id)
        if mirror is not None:
            self._forget(session_id)
        return mirror

    def _forget(self, session_id: str) -> None:
        if self._mirrors.pop(session_id, None) is None:
            return
        task = asyncio.create_task(self._unsubscribe(session_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
