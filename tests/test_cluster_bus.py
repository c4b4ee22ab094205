"""The pub/sub reader takes what one read brought in one go, in order, and loses nothing.

`Bus` reaches behind redis-py's `PubSub.get_message` to the hiredis parser of the
connection for the messages already parsed. These tests run against a real redis-server
so that an upgrade of redis-py which moves that parser fails here, rather than quietly
costing every mirrored frame a `get_message` again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from chatbot.cluster.bus import Bus, _hiredis_reader
from chatbot.cluster.keys import Keys
from chatbot.cluster.link import Link
from tests.redis import Redis


class Received:
    """What the bus handed on, and a way to wait for a number of frames."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, bytes]] = []
        self.messages: list[bytes] = []
        self._enough = asyncio.Event()
        self._want = 0

    def on_frames(self, session_id: str, data: bytes) -> None:
        self.frames.append((session_id, data))
        if len(self.frames) >= self._want:
            self._enough.set()

    async def wait_for(self, count: int) -> None:
        self._want = count
        if len(self.frames) < count:
            self._enough.clear()
            await asyncio.wait_for(self._enough.wait(), 10)


@pytest.fixture
async def bus(
    redis_server: Redis, redis_prefix: str
) -> AsyncIterator[tuple[Bus, Received, Keys, redis.asyncio.Redis]]:
    link = Link(redis_server.url)
    keys = Keys(redis_prefix)
    received = Received()
    bus = Bus(
        link,
        keys,
        keys.inbox("me"),
        on_message=received.messages.append,
        on_frames=received.on_frames,
        on_reconnect=lambda: None,
    )
    await bus.start()
    publisher = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        yield bus, received, keys, publisher
    finally:
        await publisher.aclose()
        await bus.stop()
        await link.close()


async def test_a_burst_arrives_whole_and_in_order_with_few_get_message_calls(
    bus: tuple[Bus, Received, Keys, redis.asyncio.Redis],
) -> None:
    reader, received, keys, publisher = bus
    await reader.follow("a")
    await reader.follow("b")
    assert _hiredis_reader(reader._pubsub) is not None, "redis-py moved its hiredis parser"
    calls = 0
    get_message = reader._pubsub.get_message

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await get_message(*args, **kwargs)

    reader._pubsub.get_message = counted  # type: ignore[method-assign]
    pipe = publisher.pipeline(transaction=False)
    sent = []
    for n in range(300):
        session = "ab"[n % 2]
        sent.append((session, b"frame %d" % n))
        pipe.publish(keys.channel(session), b"frame %d" % n)
        if n == 150:
            pipe.publish(keys.inbox("me"), b"a request")
    await pipe.execute()
    await received.wait_for(300)
    assert received.frames == sent
    assert received.messages == [b"a request"]
    assert calls < 100, f"{calls} get_message calls for 301 messages: no batch was taken"


async def test_a_subscription_confirmed_among_frames_still_confirms(
    bus: tuple[Bus, Received, Keys, redis.asyncio.Redis],
) -> None:
    """A `subscribe` reply read in the same go as frames confirms `follow` all the same."""
    reader, received, keys, publisher = bus
    await reader.follow("a")
    pipe = publisher.pipeline(transaction=False)
    for n in range(200):
        pipe.publish(keys.channel("a"), b"%d" % n)
    publishing = asyncio.ensure_future(pipe.execute())
    await asyncio.wait_for(reader.follow("c"), 5)
    await publishing
    await publisher.publish(keys.channel("c"), b"to c")
    await received.wait_for(201)
    assert received.frames[-1] == ("c", b"to c")
    assert [data for session, data in received.frames if session == "a"] == [
        b"%d" % n for n in range(200)
    ]
