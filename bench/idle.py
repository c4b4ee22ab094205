"""Idle streams: what N open, quiet event streams cost a server.

Sessions are made first, so the RSS growth measured is the streams' alone; CPU is read
over a window that spans two keep-alive rounds, so it includes them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.fanout import open_sessions
from bench.flavors import Flavor, port
from bench.loadgen import Stream, open_stream
from bench.target import running

CONNECTS_IN_FLIGHT = 200


async def idle_streams(flavor: Flavor, count: int, quiet_seconds: float) -> dict[str, Any]:
    """Open `count` streams on `count` sessions, then sit quietly for `quiet_seconds`."""
    async with running(flavor.name, flavor.command(port()), flavor.env(20, "ok")) as target:
        ids, _ = await open_sessions(target, flavor, count, None, streams=False)
        await asyncio.sleep(1)  # let start-up work and the session writes settle
        rss0 = target.rss()
        began = time.monotonic()
        streams: list[Stream] = []
        for start in range(0, count, CONNECTS_IN_FLIGHT):
            batch = ids[start : start + CONNECTS_IN_FLIGHT]
            streams += await asyncio.gather(
                *(
                    open_stream(target.host, target.port, "GET", flavor.stream_path(sid))
                    for sid in batch
                )
            )
        if flavor.module is None:  # ours answers each stream with a snapshot first
            await asyncio.gather(*(stream.first_event for stream in streams))
        opened = time.monotonic() - began
        refused = sum(stream.status != 200 for stream in streams)
        await asyncio.sleep(1)
        rss1 = target.rss()
        cpu0, t0 = target.cpu(), time.monotonic()
        await asyncio.sleep(quiet_seconds)
        cpu1, t1 = target.cpu(), time.monotonic()
        rss2 = target.rss()
        received = sum(stream.bytes_received for stream in streams)
        for stream in streams:
            stream.close()
    return {
        "server": flavor.name,
        "streams": count,
        "refused": refused,
        "open_seconds": opened,
        "baseline_rss_mb": rss0 / 2**20,
        "rss_per_stream_kib": (max(rss1, rss2) - rss0) / count / 1024,
        "rss_growth_mb": (max(rss1, rss2) - rss0) / 2**20,
        "idle_cpu": (cpu1 - cpu0) / (t1 - t0),
        "idle_seconds": t1 - t0,
        "bytes_per_stream_idle": received / count,
    }
