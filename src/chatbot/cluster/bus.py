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
from typing import Any

from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio.client import PubSub

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
                if message is not None:
                    self._handle(message)
                    await self._read_buffered()
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
            if message is not None:
                delay = 0.1

    async def _read_buffered(self) -> None:
        """Take the replies already read from the socket and parsed, without a `get_message`.

        A trip of the holder's outbox publishes one message per session, and they arrive
        together; redis-py's `get_message` costs ~8 µs per message (a timeout context, a
        health check, a dict) where the message itself is already parsed, in C, by hiredis.
        This reaches redis-py's hiredis parser (tests/test_cluster_bus.py fails if an
        upgrade moves it); without it, every message goes through `get_message` as before.
        """
        reader = _hiredis_reader(self._pubsub)
        if reader is None:
            return
        pubsub = self._pubsub
        while (response := reader.gets()) is not NOT_ENOUGH_DATA:
            if isinstance(response, Exception):
                raise response
            if type(response) is list and response[0] == b"message":
                self._deliver(response[1], response[2])
            elif response not in pubsub.health_check_response:
                message = await pubsub.handle_message(response)  # type: ignore[no-untyped-call]
                if message is not None:
                    self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel: bytes = message["channel"]
        if kind == "message":
            self._deliver(channel, message["data"])
        elif kind == "subscribe":
            confirmed = self._confirm.pop(channel, None)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            if self._cut and channel == self.inbox:
                self._cut = False
                self._on_reconnect()

    def _deliver(self, channel: bytes, data: bytes) -> None:
        if channel == self.inbox:
            self._on_message(data)
        elif channel.startswith(self._live_prefix):
            self._on_frames(channel[len(self._live_prefix) :].decode(), data)


def _hiredis_reader(pubsub: PubSub) -> Any:
    """The hiredis reader of the pub/sub connection's parser, or None."""
    parser = getattr(pubsub.connection, "_parser", None)
    return getattr(parser, "_reader", None) if isinstance(parser, _AsyncHiredisParser) else None
