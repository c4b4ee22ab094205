"""Short-lived facts every worker must agree on: unused sign-in nonces, revoked tokens.

One process keeps them in memory; a cluster keeps them in its Redis (keys that expire
by themselves), so a nonce is single-use and a logout holds on every worker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatbot.errors import BackendUnavailable


class Ledger(Protocol):
    """Keys that exist for a while."""

    async def add(self, key: str, seconds: float) -> None:
        """Record `key` for `seconds`."""

    async def has(self, key: str) -> bool:
        """True while `key` is recorded."""

    async def take(self, key: str) -> bool:
        """Remove `key`; True when it was recorded (so exactly one taker wins)."""


class MemoryLedger:
    """The ledger of one process."""

    PRUNE_EVERY = 1024

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._adds = 0

    async def add(self, key: str, seconds: float) -> None:
        """Record `key` for `seconds`; expired keys are pruned now and then."""
        now = time.monotonic()
        self._adds += 1
        if self._adds % self.PRUNE_EVERY == 0:
            self._until = {k: until for k, until in self._until.items() if until > now}
        self._until[key] = now + seconds

    async def has(self, key: str) -> bool:
        """True while `key` is recorded."""
        return self._until.get(key, 0.0) > time.monotonic()

    async def take(self, key: str) -> bool:
        """Remove `key`; True when it was still recorded."""
        return self._until.pop(key, 0.0) > time.monotonic()


class RedisLedger:
    """The ledger of a cluster, in its Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        self.redis = aioredis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        self.prefix = prefix

    async def add(self, key: str, seconds: float) -> None:
        """SET with an expiry."""
        await self._call(self.redis.set(self.prefix + key, b"1", px=max(1, int(seconds * 1000))))

    async def has(self, key: str) -> bool:
        """EXISTS."""
        return bool(await self._call(self.redis.exists(self.prefix + key)))

    async def take(self, key: str) -> bool:
        """DEL, whose count says whether this caller removed it."""
        return bool(await self._call(self.redis.delete(self.prefix + key)))

    async def close(self) -> None:
        """Disconnect."""
        await self.redis.aclose()

    @staticmethod
    async def _call(pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        except (RedisError, OSError):
            raise BackendUnavailable(
                "The cluster's Redis is unavailable; try again shortly.", retry_after=2
            ) from None
