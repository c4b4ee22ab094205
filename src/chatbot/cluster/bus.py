"""The worker's one pub/sub connection: its inbox, and the live feed of mirrored sessions.

redis-py reconnects a pub/sub connection and subscribes its channels again by itself;
frames published while it was cut are lost to it, so after a reconnect every mirror
checks the session's stream for what it missed (`on_reconnect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from chatbot.cluster.keys import Keys
from chatbot.cluster.link import IDLE_PING_SECONDS, REDIS_DOWN, Link

log = logging.getLogger("chatbot.cluster")
CONFIRM_SECONDS = 5.0


class Bus:
    """Subscriptions and the task that reads them."""

    def __init__(
        self,
        link: Link,
        keys: Keys,
        inbox: str,
        *,
        on_message: Callable[[bytes], None],
        on_frames: Callable[[str, bytes], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self.link = link
        self.keys = keys
        self.inbox = inbox.encode()
        self._live_prefix = keys.channel("").encode()
        self._pubsub = link.listener.pubsub()
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._on_frames = on_frames
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._cut = False

    async def start(self) -> None:
        """Subscribe to this worker's inbox and start reading."""
        confirmed = self._confirm[self.inbox] = asyncio.get_running_loop().create_future()
        await self.link.call(self._pubsub.subscribe(self.inbox))
        self._task = asyncio.create_task(self._read(), name="cluster-bus")
        await asyncio.wait_for(confirmed, CONFIRM_SECONDS)

    async def stop(self) -> None:
        """Stop reading and close the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def follow(self, session_id: str) -> None:
        """Receive the session's frames from now on (returns once Redis confirmed it)."""
        await self._subscribe(self.keys.channel(session_id).encode())

    async def unfollow(self, session_id: str) -> None:
        """Stop receiving the session's frames."""
        with contextlib.suppress(*REDIS_DOWN):  # the channel goes with the connection
            await self._pubsub.unsubscribe(self.keys.channel(session_id))

    async def _subscribe(self, channel: bytes) -> None:
        confirmed = self._confirm.get(channel)
        if confirmed is None:
            confirmed = self._confirm[channel] = asyncio.get_running_loop().create_future()
            await self.link.call(self._pubsub.subscribe(channel))
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), CONFIRM_SECONDS)
        except TimeoutError:
            self._confirm.pop(channel, None)
            raise

    async def _read(self) -> None:
        delay = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(timeout=IDLE_PING_SECONDS)
            except REDIS_DOWN as error:
                self.link.lost(error)
                self._cut = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except RuntimeError:
                # "pubsub connection not set": nothing subscribed yet.
                await asyncio.sleep(0.05)
                continue
            if message is None:
                continue
            delay = 0.1
            kind = message["type"]
            channel: bytes = message["channel"]
            if kind == "message":
                if channel == self.inbox:
                    self._on_message(message["data"])
                elif channel.startswith(self._live_prefix):
                    session_id = channel[len(self._live_prefix) :].decode()
                    self._on_frames(session_id, message["data"])
            elif kind == "subscribe":
                confirmed = self._confirm.pop(channel, None)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                if self._cut and channel == self.inbox:
                    self._cut = False
                    self._on_reconnect()
