"""Wire efficiency: bytes on the wire per streamed token as the history grows.

A session gets `history` messages, then its streams watch one reply of `TOKENS` ordinary
word tokens at 20 tokens/s (words, not stamps: a stamp is 17 characters, a model's token
about 5, and this measures the protocol, not the text). Everything a stream receives
after its first frame (the snapshot, or the first state) counts: framing, the deltas and
the turn's other events.

Our server is filled quickly on one run and measured on a second run on the same
database, so the reply and the filler can differ; the original design keeps nothing, so
it is filled and measured in one run (its reply echoes the message).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from bench.flavors import OURS, OURS_LEGACY, SEED, Flavor, port
from bench.loadgen import Connection, Stream, open_stream
from bench.target import Target, running

TOKENS = 100
REPLY = " ".join(f"word{index % 10}" for index in range(TOKENS))  # 100 tokens of 5 characters
FILL = "fill"


async def ours(history: int) -> list[dict[str, Any]]:
    """Both of our streams, at this history length."""
    database = f"sqlite:///{Path(tempfile.mkdtemp(prefix='chatbot-wire-')) / 'wire.db'}"
    fill_env = OURS.env(0, "{message}", DATABASE_URL=database, BUSY_POLICY="queue")
    async with running(
        OURS.name, OURS.command(port()), {**fill_env, "MAX_QUEUED_MESSAGES": "1000"}
    ) as target:
        connection = await target.connect()
        sid = await OURS.new_session(connection)
        await _fill(connection, sid, history)
        connection.close()
    async with running(
        OURS.name, OURS.command(port()), OURS.env(20, REPLY, DATABASE_URL=database)
    ) as target:
        return await _measure(target, sid, [OURS, OURS_LEGACY], "go", history)


async def original(history: int) -> list[dict[str, Any]]:
    """The original design's full-state stream, at this history length."""
    async with running(SEED.name, SEED.command(port()), SEED.env(20, "{message}")) as target:
        connection = await target.connect()
        sid = await SEED.new_session(connection)
        await _fill(connection, sid, history)
        connection.close()
        return await _measure(target, sid, [SEED], REPLY, history)


async def _measure(
    target: Target, sid: str, flavors: list[Flavor], message: str, history: int
) -> list[dict[str, Any]]:
    watching: list[tuple[Flavor, Stream, _TurnOver, int]] = []
    for flavor in flavors:
        over = _TurnOver()
        stream = await open_stream(
            target.host, target.port, "GET", flavor.stream_path(sid), on_event=over.see
        )
        await stream.first_event
        watching.append((flavor, stream, over, stream.bytes_received))
    connection = await target.connect()
    response = await connection.request(
        "POST", "/api/chat", json={"session_id": sid, "message": message}
    )
    assert response.status == 200, response.body[:300]
    connection.close()
    await asyncio.wait_for(asyncio.gather(*(over.done for _, _, over, _ in watching)), 60)
    await asyncio.sleep(0.5)  # frames still on their way (the legacy stream coalesces)
    results = []
    for flavor, stream, _, before in watching:
        stream.close()
        received = stream.bytes_received - before
        results.append(
            {
                "stream": flavor.name,
                "history": history,
                "tokens": TOKENS,
                "bytes": received,
                "bytes_per_token": received / TOKENS,
            }
        )
    return results


class _TurnOver:
    """Resolves when a stream reports the reply finished (busy seen, then idle)."""

    def __init__(self) -> None:
        self.busy = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def see(self, stream: Stream, event: bytes) -> None:
        if b'"is_processing":true' in event:
            self.busy = True
        elif self.busy and b'"is_processing":false' in event and not self.done.done():
            self.done.set_result(None)


async def _fill(connection: Connection, sid: str, history: int) -> None:
    """`history` messages: user/agent pairs answered at once."""
    for _ in range(history // 2):
        while True:
            response = await connection.request(
                "POST", "/api/chat", json={"session_id": sid, "message": FILL}
            )
            if response.status != 409:  # the original design has no queue: wait for the turn
                break
            await asyncio.sleep(0.001)
        assert response.status == 200, response.body[:300]
    while True:  # polling the state endpoint, as the original's clients did
        state = await connection.request("GET", f"/api/state?session_id={sid}")
        body = state.json()
        if not body["is_processing"] and len(body["messages"]) >= min(history, 200):
            return
        await asyncio.sleep(0.05)
