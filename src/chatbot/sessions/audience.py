"""The open streams of one session on this worker, and how changes reach them.

Typed-event streams get each frame as it happens; legacy streams get the whole state,
coalesced to at most one frame per LEGACY_STREAM_MIN_INTERVAL_MS. Both a session this
worker holds and a cluster mirror of a session held elsewhere fan out through one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chatbot.sessions.events import StreamKind, Subscriber


class Audience:
    """The subscribers of one session; frames in, pushes out, nothing awaited."""

    __slots__ = (
        "_flush",
        "_interval",
        "_last_flush",
        "_legacy_frame",
        "_sent",
        "_snapshot_frame",
        "legacy",
        "typed",
    )

    def __init__(
        self,
        snapshot_frame: Callable[[], bytes],
        legacy_frame: Callable[[], bytes],
        interval_ms: float,
        sent: Callable[[int], None],
    ) -> None:
        self.typed: set[Subscriber] = set()
        self.legacy: set[Subscriber] = set()
        self._snapshot_frame = snapshot_frame
        self._legacy_frame = legacy_frame
        self._interval = interval_ms / 1000
        self._sent = sent
        self._flush: asyncio.Handle | None = None
        self._last_flush = 0.0

    def __len__(self) -> int:
        return len(self.typed) + len(self.legacy)

    def add(self, subscriber: Subscriber) -> None:
        """Start delivering to `subscriber`; a resync renders this session's state."""
        if subscriber.kind is StreamKind.EVENTS:
            subscriber.snapshot = self._snapshot_frame
            self.typed.add(subscriber)
        else:
            subscriber.snapshot = self._legacy_frame
            self.legacy.add(subscriber)

    def discard(self, subscriber: Subscriber) -> None:
        """Stop delivering to `subscriber`."""
        self.typed.discard(subscriber)
        self.legacy.discard(subscriber)

    def publish(self, frame: bytes) -> None:
        """Hand one event frame to every typed stream; legacy streams get the state soon."""
        for subscriber in self.typed:
            subscriber.push(frame)
        sent = len(self.typed)
        if self.legacy:
            self._schedule_legacy()
        if sent:
            self._sent(sent)

    def _schedule_legacy(self) -> None:
        if self._flush is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_flush + self._interval - loop.time())
        self._flush = loop.call_later(delay, self._flush_legacy)

    def _flush_legacy(self) -> None:
        self._flush = None
        self._last_flush = asyncio.get_running_loop().time()
        self.push_state()

    def push_state(self) -> None:
        """Send the current full state to every legacy stream now."""
        if not self.legacy:
            return
        frame = self._legacy_frame()
        for subscriber in self.legacy:
            subscriber.push_state(frame)
        self._sent(len(self.legacy))

    def start_over(self) -> None:
        """The log jumped: typed streams get a fresh snapshot next, legacy ones the state now."""
        for subscriber in self.typed:
            subscriber.start_over()
        self.push_state()

    def close(self) -> None:
        """Send legacy streams the final state, then end every stream after its backlog."""
        self._cancel_flush()
        self.push_state()
        self.end()

    def end(self) -> None:
        """End every stream once what it already has is written."""
        for subscriber in (*self.typed, *self.legacy):
            subscriber.close()

    def take(self) -> list[Subscriber]:
        """Give up every stream (they move to whoever follows the session here next)."""
        taken = [*self.typed, *self.legacy]
        self._cancel_flush()
        self.typed.clear()
        self.legacy.clear()
        return taken

    def _cancel_flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
