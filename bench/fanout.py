"""Fan-out: S sessions each streaming a reply at T tokens/s, and the first token's delay.

Every token carries its emit time (the scripted `{now}`), so latency runs from the
provider's emit to the load generator's receipt: it covers the agent loop, the event
log, the SSE write and loopback. Replies start spread over one second, as real users'
would, and the rate and server CPU are read over the window in which all S stream.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.flavors import Flavor, port
from bench.loadgen import Connection, Latencies, Stream, open_stream
from bench.progress import step
from bench.target import Target, running

RAMP_SECONDS = 1.0
TURN_STARTS_PER_SECOND = 100
SATURATED_WINDOW = 2.0
CHAT_CONNECTIONS = 64


def stamped_reply(tokens: int) -> str:
    """A reply of `tokens` tokens, each one its own emit time."""
    return " ".join(["{now}"] * tokens)


async def open_sessions(
    target: Target, flavor: Flavor, count: int, latencies: Latencies | None, *, streams: bool = True
) -> tuple[list[str], list[Stream]]:
    """`count` sessions, each with its events stream open (unless `streams` is False)."""
    connections = [await target.connect() for _ in range(min(CHAT_CONNECTIONS, count))]
    ids: list[str] = []

    async def make(connection: Connection, share: int) -> None:
        for _ in range(share):
            ids.append(await flavor.new_session(connection))

    shares = [
        count // len(connections) + (i < count % len(connections)) for i in range(len(connections))
    ]
    await asyncio.gather(*(make(c, n) for c, n in zip(connections, shares, strict=True)))
    for connection in connections:
        connection.close()
    opened: list[Stream] = []
    for start in range(0, count if streams else 0, 200):  # at most 200 connects in flight
        batch = ids[start : start + 200]
        opened += await asyncio.gather(
            *(
                open_stream(
                    target.host, target.port, "GET", flavor.stream_path(sid), latencies=latencies
                )
                for sid in batch
            )
        )
    return ids, opened


async def send_chats(target: Target, ids: list[str], ramp: float, answered: Latencies) -> None:
    """One chat per session, spread evenly over `ramp` seconds."""
    connections = [await target.connect() for _ in range(min(CHAT_CONNECTIONS, len(ids)))]
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def send(connection: Connection, mine: list[tuple[int, str]]) -> None:
        for index, sid in mine:
            # Anywhere within its slot (seeded: every run, every server alike): evenly
            # spaced chats would start replies in lockstep, their tokens all due at once.
            delay = start + ramp * (index + random.Random(index).random()) / len(ids)
            delay -= loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            began = loop.time()
            response = await connection.request(
                "POST", "/api/chat", json={"session_id": sid, "message": "go"}
            )
            assert response.status == 200, response.body[:300]
            answered.samples.append(round((loop.time() - began) * 1e6))

    indexed = list(enumerate(ids))
    await asyncio.gather(
        *(send(c, indexed[i :: len(connections)]) for i, c in enumerate(connections))
    )
    for connection in connections:
        connection.close()


async def fanout_point(flavor: Flavor, sessions: int, tps: float, seconds: float) -> dict[str, Any]:
    """One point of the sweep: rate delivered, latency, server CPU and RSS.

    Turns used to cost about 4 ms of CPU to start (0.2 ms now; the ramp is kept so that
    runs compare), so replies start over `sessions / TURN_STARTS_PER_SECOND` seconds;
    each lasts that ramp plus `seconds`, and the steady window runs from when all stream
    to when the first one ends.
    """
    ramp = max(RAMP_SECONDS, sessions / TURN_STARTS_PER_SECOND)
    tokens = max(3, round(tps * (seconds + ramp)))
    chosen = port()
    env = flavor.env(tps, stamped_reply(tokens))
    pauses_file = Path(tempfile.mkdtemp(prefix="chatbot-lag-")) / "pauses.json"
    if flavor.probed:
        env["LAG_PROBE_OUT"] = str(pauses_file)
    async with running(flavor.name, flavor.command(chosen), env) as target:
        latencies = Latencies()
        ids, streams = await open_sessions(target, flavor, sessions, latencies)
        loop = asyncio.get_running_loop()
        answered = Latencies()
        start, cpu_start = time.monotonic(), target.cpu()
        sent = loop.create_task(send_chats(target, ids, ramp, answered))
        # A saturated server may never deliver everything: each wait has a budget, and
        # what arrived by then is what is reported.
        budget = ramp + seconds * 3 + 30
        await asyncio.wait([sent, *(stream.has_tokens(1) for stream in streams)], timeout=budget)
        t0, cpu0, got0, n0 = _reading(target, streams, latencies)
        wall0 = time.time()
        await asyncio.wait(
            [stream.has_tokens(tokens) for stream in streams],
            timeout=budget,
            return_when=asyncio.FIRST_COMPLETED,
        )
        t1, cpu1, got1, n1 = _reading(target, streams, latencies)
        wall1 = time.time()
        rss = target.rss()
        await asyncio.wait(
            [sent, *(stream.has_tokens(tokens) for stream in streams)], timeout=budget
        )
        end, cpu_end = time.monotonic(), target.cpu()
        sent.cancel()
        delivered = _tokens(streams)
        for stream in streams:
            stream.close()
    window = max(t1 - t0, 1e-9)
    steady = Latencies(latencies.samples[n0:n1])
    saturated = window < SATURATED_WINDOW
    if saturated:
        # Never all streaming at once: the server could not keep up with the ramp. The
        # whole run is then the window, and every token counts.
        window, steady = end - start, latencies
        got0, got1, cpu0, cpu1 = 0, delivered, cpu_start, cpu_end
    return {
        "server": flavor.name,
        "sessions": sessions,
        "tps": tps,
        "offered_per_s": sessions * tps,
        "tokens_per_s": (got1 - got0) / window,
        "delivered": delivered,
        "expected": tokens * sessions,
        "p50_ms": steady.p50_ms(),
        "p99_ms": steady.p99_ms(),
        "all_p99_ms": latencies.p99_ms(),
        "cpu": (cpu1 - cpu0) / window,
        "rss_mb": rss / 2**20,
        "window_s": window,
        "saturated": saturated,
        "ramp_s": ramp,
        "chat_p50_ms": answered.p50_ms(),
        "chat_p99_ms": answered.p99_ms(),
        **(_pauses(pauses_file, wall0, wall1) if flavor.probed else {}),
    }


def _pauses(path: Path, start: float, end: float) -> dict[str, Any]:
    """The event loop's pauses and the garbage collections (bench/lagprobe.py) within the
    steady window."""
    found = orjson.loads(path.read_bytes())
    within = [ms for at, ms in found["pauses"] if start <= at <= end]
    collections = [(gen, ms) for at, gen, ms in found["collections"] if start <= at <= end]
    return {
        "loop_max_pause_ms": max(within, default=0.0),
        "loop_pauses_over_10ms": sum(ms > 10 for ms in within),
        "loop_pauses_over_2ms": len(within),
        "gc": {
            str(generation): {
                "count": len(times := [ms for gen, ms in collections if gen == generation]),
                "total_ms": sum(times),
                "max_ms": max(times, default=0.0),
            }
            for generation in (0, 1, 2)
        },
    }


def _tokens(streams: list[Stream]) -> int:
    return sum(stream.tokens for stream in streams)


def _reading(
    target: Target, streams: list[Stream], latencies: Latencies
) -> tuple[float, float, int, int]:
    """Now: the time, server CPU, tokens received and latency samples taken."""
    return time.monotonic(), target.cpu(), _tokens(streams), len(latencies.samples)


async def first_token(flavor: Flavor, repeats: int) -> dict[str, Any]:
    """Time from sending a chat to its first token, on an idle server."""
    chosen = port()
    async with running(
        flavor.name, flavor.command(chosen), flavor.env(20, stamped_reply(3))
    ) as target:
        connection = await target.connect()
        delays = []
        for _ in range(repeats):
            sid = await flavor.new_session(connection)
            stream = await open_stream(target.host, target.port, "GET", flavor.stream_path(sid))
            if flavor.module is None:
                await stream.first_event  # our snapshot comes first; the token is next
            sent = time.time_ns() // 1000
            response = await connection.request(
                "POST", "/api/chat", json={"session_id": sid, "message": "go"}
            )
            assert response.status == 200, response.body[:300]
            delays.append((await asyncio.wait_for(stream.first_token, 10) - sent) / 1000)
            stream.close()
        connection.close()
    return {"server": flavor.name, "median_ms": statistics.median(delays), "max_ms": max(delays)}


async def sweep(
    flavor: Flavor, points: list[tuple[int, float]], seconds: float
) -> list[dict[str, Any]]:
    """Run the points in order; stop early once a point is hopelessly saturated."""
    results = []
    for sessions, tps in points:
        with step(f"fan-out {flavor.name}: {sessions} sessions x {tps:g} tokens/s"):
            result = await fanout_point(flavor, sessions, tps, seconds)
        print(
            f"    {result['tokens_per_s']:,.0f} tokens/s, p50 {result['p50_ms']:.1f} ms,"
            f" p99 {result['p99_ms']:.1f} ms, cpu {result['cpu']:.0%}",
            flush=True,
        )
        results.append(result)
        if result["p99_ms"] > 5000:
            break
    return results
