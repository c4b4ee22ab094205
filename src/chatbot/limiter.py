"""What one client may spend: message rates, counted with the `limits` library.

Counted per principal; until users sign in (AUTH), the principal is the client's IP
address (behind a proxy on this machine, the one it names in X-Forwarded-For, which
uvicorn trusts from 127.0.0.1). One process counts in memory; a cluster counts in its
Redis, so a client cannot multiply its budget by reaching several workers.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
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
        self.messages: RateLimitItem | None = (
            parse(settings.rate_limit_messages) if settings.rate_limit_messages else None
        )
        self.metrics = metrics

    async def message(self, principal: str) -> None:
        """Count one message (chat or system note); 429 when over RATE_LIMIT_MESSAGES."""
        limit = self.messages
        if limit is None:
            return
        try:
            if await self.strategy.hit(limit, "messages", principal):
                return
            reset, _ = await self.strategy.get_window_stats(limit, "messages", principal)
        except StorageError:
            raise BackendUnavailable(
                "The cluster's Redis is unavailable; try again shortly.", retry_after=2
            ) from None
        self.metrics.rate_limited.labels("messages").inc()
        wait = max(1, math.ceil(reset - time.time()))
        raise RateLimited(
            f"More than {limit.amount} messages per {limit.multiples} {limit.GRANULARITY.name}; "
            f"try again in {wait} s.",
            retry_after=wait,
        )
