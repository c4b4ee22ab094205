"""Resume: a client that missed events reconnects with `Last-Event-ID`.

The session streams a reply of `missed` tokens as fast as the server can while the
client is away; the time measured runs from the reconnect request to the first
replayed event.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from typing import Any

from bench.fanout import stamped_reply
from bench.flavors import Flavor, port
from bench.loadgen import now_us, open_stream
from bench.target import running


async def resume(flavor: Flavor, missed: int, repeats: int) -> dict[str, Any]:
    """Median and worst time to the first replayed event, and how many events came back."""
    env = flavor.env(0, stamped_reply(missed))
    async with running(flavor.name, flavor.command(port()), env) as target:
        connection = await target.connect()
        delays, replayed = [], []
        for _ in range(repeats):
            sid = await flavor.new_session(connection)
            away = await open_stream(target.host, target.port, "GET", flavor.stream_path(sid))
            response = await connection.request(
                "POST", "/api/chat", json={"session_id": sid, "message": "go"}
            )
            assert response.status == 200, response.body[:300]
            await asyncio.wait_for(away.has_tokens(1), 10)
            last_id, seen = away.last_event_id, away.tokens
            away.close()
            await _wait_idle(connection, flavor, sid)
            sent = now_us()
            back = await open_stream(
                target.host,
                target.port,
                "GET",
                flavor.stream_path(sid),
                headers={"Last-Event-ID": str(last_id)},
            )
            delays.append((await asyncio.wait_for(back.first_event, 10) - sent) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(back.has_tokens(missed - seen), 5)
            replayed.append(seen + back.tokens)
            back.close()
        connection.close()
    return {
        "server": flavor.name,
        "missed": missed,
        "median_ms": statistics.median(delays),
        "max_ms": max(delays),
        "tokens_received": min(replayed),
    }


async def _wait_idle(connection: Any, flavor: Flavor, sid: str) -> None:
    """Until the reply is over (ours reports it; the baselines are given the time)."""
    if flavor.module is not None:
        await asyncio.sleep(0.5)
        return
    # Polling the state endpoint, the way a client without a stream would.
    while (await connection.request("GET", f"/api/sessions/{sid}")).json()["is_processing"]:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
