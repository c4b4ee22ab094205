"""Wire efficiency: bytes on the wire per streamed token as the history grows.

A session is filled with `history` messages (short instant replies), then both of its
streams watch one reply of `TOKENS` stamped tokens at 20 tokens/s; everything a stream
receives after its first frame (the snapshot or first state) counts, framing and the
turn's other events included.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.flavors import OURS, OURS_LEGACY, Flavor, port
from bench.loadgen import Connection, Stream, open_stream
from bench.target import Target, running

TOKENS = 100
FILL = "fill"


async def wire_bytes(server: Flavor, streams: list[Flavor], history: int) -> list[dict[str, Any]]:
    """Bytes per token on each of `streams` (flavors of `server`) at this history length."""
    env = server.env(20, "{message}", BUSY_POLICY="queue", MAX_QUEUED_MESSAGES="1000")
    async with running(server.name, server.command(port()), env) as target:
        connection = await target.connect()
        sid = await server.new_session(connection)
        await _fill(target, connection, sid, history)
        watching: list[tuple[Flavor, Stream, int]] = []
        for flavor in streams:
            stream = await open_stream(target.host, target.port, "GET", flavor.stream_path(sid))
            await stream.first_event
            watching.append((flavor, stream, stream.bytes_received))
        message = " ".join(["{now}"] * TOKENS)
        response = await connection.request(
            "POST", "/api/chat", json={"session_id": sid, "message": message}
        )
        assert response.status == 200, response.body[:300]
        await asyncio.wait_for(
            asyncio.gather(*(stream.has_tokens(TOKENS) for _, stream, _ in watching)), 60
        )
        await asyncio.sleep(0.5)  # the turn's closing events
        connection.close()
        results = []
        for flavor, stream, before in watching:
            stream.close()
            results.append(
                {
                    "stream": flavor.name,
                    "history": history,
                    "tokens": stream.tokens,
                    "bytes": stream.bytes_received - before,
                    "bytes_per_token": (stream.bytes_received - before) / TOKENS,
                }
            )
    return results


async def _fill(target: Target, connection: Connection, sid: str, history: int) -> None:
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


OUR_STREAMS = [OURS, OURS_LEGACY]
