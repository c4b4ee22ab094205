"""Interrupt: from `POST /api/interrupt` to the turn's end and to the upstream hang-up.

The model is the tests' fake OpenAI server (its real streaming wire format), sending a
slow reply; it notes when the server's upstream connection closes. Both clocks are
this process's monotonic clock, since the fake runs in the load generator's loop.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.flavors import OURS, port
from bench.loadgen import Stream, open_stream
from bench.target import running
from tests.fakes.llm import FakeLLM, Reply

TURN_OVER = b'"is_processing":false'


async def interrupt(repeats: int) -> dict[str, Any]:
    """p50/max of both delays over `repeats` interrupted replies."""
    async with FakeLLM.start("openai") as fake:
        fake.default = Reply(["tick "] * 2000, delay=0.02)
        env = {
            **OURS.env(20, "unused"),
            "LLM_PROVIDER": "openai",
            **fake.env(),
            "LLM_MAX_RETRIES": "0",
        }
        async with running(OURS.name, OURS.command(port()), env) as target:
            connection = await target.connect()
            to_end, to_hangup = [], []
            for _ in range(repeats):
                sid = await OURS.new_session(connection)
                watch = _Watch()
                stream = await open_stream(
                    target.host, target.port, "GET", OURS.stream_path(sid), on_event=watch.see
                )
                response = await connection.request(
                    "POST", "/api/chat", json={"session_id": sid, "message": "go"}
                )
                assert response.status == 200, response.body[:300]
                await asyncio.wait_for(watch.ticking, 5)
                hangups = len(fake.disconnects)
                sent = time.monotonic()
                response = await connection.request(
                    "POST", "/api/interrupt", json={"session_id": sid}
                )
                assert response.status == 200, response.body[:300]
                to_end.append((await asyncio.wait_for(watch.ended, 5) - sent) * 1000)
                while len(fake.disconnects) == hangups:
                    fake.disconnected.clear()
                    await asyncio.wait_for(fake.disconnected.wait(), 5)
                to_hangup.append((fake.disconnects[hangups] - sent) * 1000)
                stream.close()
            connection.close()
    return {
        "repeats": repeats,
        "turn_end_p50_ms": statistics.median(to_end),
        "turn_end_max_ms": max(to_end),
        "upstream_close_p50_ms": statistics.median(to_hangup),
        "upstream_close_max_ms": max(to_hangup),
    }


class _Watch:
    """Follows a stream: when the reply starts ticking, and when the turn is over."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ticking: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[float] = loop.create_future()

    def see(self, stream: Stream, event: bytes) -> None:
        if not self.ticking.done():
            if b"tick" in event:
                self.ticking.set_result(None)
        elif b"event: state" in event and TURN_OVER in event and not self.ended.done():
            self.ended.set_result(time.monotonic())
