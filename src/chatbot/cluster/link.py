"""The worker's connection to Redis, and what it says about Redis being there.

Every Redis call of the cluster goes through `Link.call`: a lost connection turns into
`BackendUnavailable` (503 with `Retry-After`) and marks Redis as away; a watcher pings
until it answers again, so service resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from chatbot.errors import BackendUnavailable
from redis import exceptions as redis_errors

log = logging.getLogger("chatbot.cluster")
T = TypeVar("T")

RETRY_AFTER_SECONDS = 2
IDLE_PING_SECONDS = 15
REDIS_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)


class Link:
    """One Redis client per worker, and whether Redis answered lately."""

    def __init__(self, url: str) -> None:
        self.redis: Redis = Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, retry_on_timeout=False
        )
        # The pub/sub connection waits for messages as long as there are none; it pings
        # while idle instead, so a dead peer is noticed without a read timeout.
        self.listener: Redis = Redis.from_url(
            url,
            socket_connect_timeout=2,
            socket_keepalive=True,
            health_check_interval=IDLE_PING_SECONDS,
        )
        self.available = True
        self._watch: asyncio.Task[None] | None = None

    def check(self) -> None:
        """Refuse work that needs Redis while it is away."""
        if not self.available:
            raise BackendUnavailable(
                "The cluster's Redis is unavailable; try again shortly.",
                retry_after=RETRY_AFTER_SECONDS,
            )

    async def call(self, pending: Awaitable[T] | T) -> T:
        """Await a Redis command; a lost connection is a 503, not a 500.

        (redis-py types its commands for both its sync and asyncio clients; here they are
        always awaitables.)
        """
        try:
            return await cast("Awaitable[T]", pending)
        except REDIS_DOWN as error:
            self.lost(error)
            raise BackendUnavailable(
                "The cluster's Redis is unavailable; try again shortly.",
                retry_after=RETRY_AFTER_SECONDS,
            ) from None

    async def execute(self, pipe: Pipeline) -> list[Any]:
        """Run a pipeline of commands in one trip; a lost connection is a 503."""
        replies: list[Any] = await self.call(pipe.execute())
        return replies

    def lost(self, error: BaseException) -> None:
        """Redis failed a call: refuse writes until a ping answers again."""
        if self.available:
            log.warning("redis unavailable", extra={"error": type(error).__name__})
        self.available = False
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._until_back(), name="redis-watch")

    async def _until_back(self) -> None:
        delay = 0.2
        while True:
            await asyncio.sleep(delay)
            try:
                await self.ping()
            except REDIS_DOWN:
                delay = min(delay * 2, 2.0)
                continue
            self.available = True
            log.info("redis available again")
            return

    async def ping(self) -> None:
        """Ask Redis for a PONG (raises when it does not answer)."""
        await cast("Awaitable[Any]", self.redis.ping())

    async def close(self) -> None:
        """Stop watching and close the connections."""
        if self._watch is not None:
            self._watch.cancel()
        await self.redis.aclose()
        await self.listener.aclose()
