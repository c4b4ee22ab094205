"""What one client may spend: message rates, counted with the `limits` library.

Counted per principal; without sign-in (AUTH=none), and on the sign-in routes, per IP
address (behind a proxy on this machine, the one it names in X-Forwarded-For, which
uvicorn trusts from 127.0.0.1). One process counts in memory; a cluster counts in its
Redis, so a client cannot multiply its budget by reaching several workers.
"""

from __future__ import annotations

import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from chatbot.config import Settings
from chatbot.errors import BackendUnavailable, RateLimited
from chatbot.metrics import Metrics


class Limiter:
    """Checks a client's budgets before any work is done for it."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        storage: Storage
        if settings.redis_url is not None:
            url = settings.redis_url.get_secret_value()
            storage = RedisStorage(
                f"async+{url}",
                implementation="redispy",
                key_prefix=f"{settings.redis_prefix}limits",
                wrap_exceptions=True,
            )
        else:
            storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(storage)
        self.rates = {
            name: parse(rate)
            for name, rate in (
                ("messages", settings.rate_limit_messages),
                ("auth", settings.rate_limit_auth),
            )
            if rate
        }
        self.max_turns = settings.max_turns_per_principal
        self.metrics = metrics

    async def message(self, principal: str) -> None:
        """Count one message (chat or system note); 429 when over RATE_LIMIT_MESSAGES."""
        await self._hit("messages", principal)

    async def sign_in(self, address: str) -> None:
        """Count one call of an auth route from an address; 429 over RATE_LIMIT_AUTH."""
        await self._hit("auth", address)

    def turn(self, running: int) -> None:
        """Refuse a turn to a principal already running MAX_TURNS_PER_PRINCIPAL (429)."""
        if running >= self.max_turns:
            self.metrics.rate_limited.labels("turns").inc()
            raise RateLimited(
                f"You already have {running} replies being written, the most at once; "
                "wait for one to finish.",
                retry_after=5,
            )

    async def _hit(self, name: str, key: str) -> None:
        limit = self.rates.get(name)
        if limit is None:
            return
        try:
            if await self.strategy.hit(limit, name, key):
                return
            reset, _ = await self.strategy.get_window_stats(limit, name, key)
        except StorageError:
            raise BackendUnavailable(
                "The cluster's Redis is unavailable; try again shortly.", retry_after=2
            ) from None
        self.metrics.rate_limited.labels(name).inc()
        wait = max(1, math.ceil(reset - time.time()))
        raise RateLimited(
            f"More than {limit.amount} {name} requests per {limit.multiples} "
            f"{limit.GRANULARITY.name}; try again in {wait} s.",
            retry_after=wait,
        )
