"""MAX_STREAMS_PER_PRINCIPAL across the cluster: each principal's open streams, in Redis.

A stream is a member of its principal's sorted set, scored by when it stops counting;
its worker renews it with its leases, so the streams of a worker that died stop counting
after three leases without anyone cleaning up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from chatbot.cluster.keys import Keys
from chatbot.cluster.link import Link
from chatbot.cluster.scripts import COUNT_STREAM
from chatbot.errors import BackendUnavailable
from chatbot.sessions.events import Subscriber

LEASES_PER_STREAM = 3


class StreamCounts:
    """This worker's share of every principal's stream count."""

    def __init__(self, link: Link, keys: Keys, worker: str, lease_seconds: float) -> None:
        self.link = link
        self.keys = keys
        self.worker = worker
        self.ms = int(lease_seconds * 1000 * LEASES_PER_STREAM)
        self._count = link.redis.register_script(COUNT_STREAM)
        self._dropping: set[asyncio.Task[None]] = set()

    def member(self, subscriber: Subscriber) -> str:
        """The stream's name in its principal's set: unique among all workers' streams."""
        return f"{self.worker}:{id(subscriber):x}"

    async def count(self, subscriber: Subscriber, limit: int) -> bool:
        """Add the stream to its principal's count; False when the count is at `limit`."""
        now = int(time.time() * 1000)
        key = self.keys.owned_streams(subscriber.owner)
        args: list[str | int] = [self.member(subscriber), now, now + self.ms, limit]
        added: int = await self.link.call(self._count(keys=[key], args=args))
        return bool(added)

    def drop(self, subscriber: Subscriber) -> None:
        """Remove an ended stream from its principal's count, without making anyone wait."""
        task = asyncio.create_task(self._drop(subscriber.owner, self.member(subscriber)))
        self._dropping.add(task)
        task.add_done_callback(self._dropping.discard)

    async def _drop(self, owner: str, member: str) -> None:
        # Redis away: the member stops counting when its score runs out.
        with contextlib.suppress(BackendUnavailable):
            await self.link.call(self.link.redis.zrem(self.keys.owned_streams(owner), member))

    async def renew(self, subscribers: list[Subscriber]) -> None:
        """Keep counting this worker's open streams for another while."""
        if not subscribers:
            return
        until = int(time.time() * 1000) + self.ms
        pipe = self.link.redis.pipeline(transaction=False)
        for subscriber in subscribers:
            key = self.keys.owned_streams(subscriber.owner)
            pipe.zadd(key, {self.member(subscriber): until}, xx=True)
            pipe.pexpireat(key, until)
        await self.link.execute(pipe)
