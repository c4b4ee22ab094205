"""Session cost: what creating and holding idle sessions costs our server.

The µs per create is the server's CPU time divided by the sessions made (the client's
wall clock would measure the load generator too); RSS per session is the growth over
the server's own baseline once every create is answered.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import orjson

from bench.flavors import OURS, port
from bench.loadgen import Connection
from bench.progress import report_progress
from bench.target import ROOT, SERVER_CORE, running

CONNECTIONS = 32


async def session_cost(count: int) -> dict[str, Any]:
    """Create `count` sessions over keep-alive connections; read CPU and RSS."""
    async with running(OURS.name, OURS.command(port()), OURS.env(20, "ok")) as target:
        await asyncio.sleep(1)  # start-up work settles
        rss0, cpu0, t0 = target.rss(), target.cpu(), time.monotonic()
        made = 0

        async def create(connection: Connection, share: int) -> None:
            nonlocal made
            for _ in range(share):
                response = await connection.request("POST", "/api/sessions")
                assert response.status == 201, response.body[:300]
                made += 1

        connections = [await target.connect() for _ in range(CONNECTIONS)]
        shares = [count // CONNECTIONS + (i < count % CONNECTIONS) for i in range(CONNECTIONS)]
        work = asyncio.gather(*(create(c, n) for c, n in zip(connections, shares, strict=True)))
        await report_progress(work, lambda: f"{made:,} of {count:,} sessions")
        cpu1, t1 = target.cpu(), time.monotonic()
        await asyncio.sleep(1)
        rss1 = target.rss()
        for connection in connections:
            connection.close()
    return {
        "sessions": count,
        "in_process": _in_process_run(count),
        "cpu_us_per_create": (cpu1 - cpu0) / count * 1e6,
        "creates_per_s": count / (t1 - t0),
        "baseline_rss_mb": rss0 / 2**20,
        "rss_bytes_per_session": (rss1 - rss0) / count,
    }


def _in_process_run(count: int) -> dict[str, Any]:
    """`in_process` in a fresh server-like process of its own, pinned like a server."""
    env = {**os.environ, **OURS.env(20, "ok"), "PYTHONPATH": str(ROOT)}
    command = [
        "taskset",
        "-c",
        str(SERVER_CORE),
        sys.executable,
        "-m",
        "bench.sessions",
        str(count),
    ]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=True)
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def in_process(count: int) -> dict[str, Any]:
    """The session's own cost, without HTTP: `SessionManager.create()` in a live app."""
    return asyncio.run(_in_process(count))


async def _in_process(count: int) -> dict[str, Any]:
    import gc
    import tracemalloc

    from chatbot.app import create_app
    from chatbot.config import Settings

    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        manager = app.state.manager
        for _ in range(1000):  # warm-up
            manager.create()
        gc.collect()
        started = time.process_time()
        for _ in range(count):
            manager.create()
        cpu = time.process_time() - started
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(10_000):
            manager.create()
        grown = sum(
            stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
        )
        tracemalloc.stop()
    return {"us_per_create": cpu / count * 1e6, "bytes_per_session": grown / 10_000}


if __name__ == "__main__":
    import sys

    print(orjson.dumps(in_process(int(sys.argv[1]))).decode())
