"""Store: what keeping sessions costs the server, and how fast each store commits.

Served: the fan-out load (S sessions x T tokens/s, with bench/fanout.py's load
generator, token script, ramp and cores; a chat never queues behind another, so turns
start on time even when answers wait for a commit) against our server three times: with no store
(bench/nullstore.py), with SQLite (a temp file) and with Postgres (a private cluster on
the load generator's core, so it takes nothing from the server's). A store's cost is
the server CPU over the whole run (first chat to every reply's final commit) above the
null store's, per delivered token and per stored message (a turn: a user message and an
agent reply). The whole run, not the steady window: both runs then did the same work,
even when one of them fell behind the ramp and the other did not. Runs alternate
between the backends and repeat, so a busy machine's drift falls on all of them alike;
the figures are medians of the differences within each repeat.

Alone: bench/storeload.py, each store in this process, at the served runs' write rate
(the store's steady cost without the server's noise) and at saturation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import storeload
from bench.fanout import (
    CHAT_CONNECTIONS,
    RAMP_SECONDS,
    SATURATED_WINDOW,
    TURN_STARTS_PER_SECOND,
    open_sessions,
    stamped_reply,
)
from bench.flavors import OURS, port
from bench.loadgen import Latencies, Stream
from bench.pgcluster import cluster_cpu, pin_cluster
from bench.progress import step
from bench.target import CLIENT_CORE, HOST, SERVER_CORE, Target, ours_command, ours_env, running
from tests.postgres import POSTGRES_BIN, Postgres, fresh_database, run_postgres

NONE, SQLITE, POSTGRES = "none", "sqlite", "postgres"
_TICKS = os.sysconf("SC_CLK_TCK")
SETTLE_SECONDS = 0.5
"""After the last token: the writer lingers 50 ms, so every reply's final save lands by then."""


@dataclass(frozen=True)
class Reading:
    """One moment of a run: time, CPU seconds (server, its threads but the loop's, the
    cluster), tokens and latency samples in."""

    time: float
    cpu: float
    threads: float
    cluster: float
    tokens: int
    samples: int


def _read(target: Target, pg: Postgres | None, streams: list[Stream], lat: Latencies) -> Reading:
    cpu = target.cpu()
    return Reading(
        time.monotonic(),
        cpu,
        cpu - _main_thread_cpu(target.pid),  # aiosqlite runs every statement on its thread
        cluster_cpu(pg) if pg else 0.0,
        sum(stream.tokens for stream in streams),
        len(lat.samples),
    )


def _main_thread_cpu(pid: int) -> float:
    """CPU seconds of a process's main thread: the event loop's, in our server."""
    with open(f"/proc/{pid}/task/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _command(backend: str, chosen: int) -> list[str]:
    """The server as `make run` starts it, or the null-store launcher's."""
    if backend == NONE:
        args = ["serve", "--host", HOST, "--port", str(chosen)]
        return [sys.executable, "-m", "bench.nullstore", *args]
    return ours_command(chosen)


@contextlib.asynccontextmanager
async def _database(backend: str, pg: Postgres | None, name: str) -> AsyncIterator[str]:
    """A DATABASE_URL of the backend's that nothing has written to yet."""
    if backend == POSTGRES:
        assert pg is not None
        async with fresh_database(pg, name) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="chatbot-bench-") as folder:
        yield f"sqlite:///{folder}/bench.db"  # the null store ignores it


async def _stored_messages(backend: str, url: str) -> int:
    if backend == POSTGRES:
        return await storeload.count_postgres_messages(url)
    if backend == SQLITE:
        path = Path(url.removeprefix("sqlite:///"))
        return await asyncio.to_thread(storeload.count_sqlite_messages, path)
    return 0


async def _chats_on_time(target: Target, ids: list[str], ramp: float, answered: Latencies) -> None:
    """One chat per session, each sent at its time on a free keep-alive connection.

    As fanout.send_chats (64 connections), except that a chat never queues behind
    another: when every connection is busy, because answers wait for a commit, it opens
    one more. There a slow answer would delay the chats behind it, turns would start
    late and the load itself would change (fewer replies at once, a longer run); here
    turns start on time whatever the store, so the CPU compares like with like, and how
    long the answers took is still measured.
    """
    free = [await target.connect() for _ in range(min(CHAT_CONNECTIONS, len(ids)))]
    opened = list(free)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def send(index: int, session_id: str) -> None:
        delay = start + ramp * index / len(ids) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if free:
            connection = free.pop()  # the most recently used: not one uvicorn timed out
        else:
            connection = await target.connect()
            opened.append(connection)
        began = loop.time()
        response = await connection.request(
            "POST", "/api/chat", json={"session_id": session_id, "message": "go"}
        )
        assert response.status == 200, response.body[:300]
        answered.samples.append(round((loop.time() - began) * 1e6))
        free.append(connection)

    try:
        await asyncio.gather(*(send(index, session_id) for index, session_id in enumerate(ids)))
    finally:
        for connection in opened:
            connection.close()


async def served_point(
    backend: str, url: str, pg: Postgres | None, sessions: int, tps: float, seconds: float
) -> dict[str, Any]:
    """One fan-out run against the server on `backend`: CPU in the steady window and overall.

    As in bench/fanout.py, replies start over `sessions / TURN_STARTS_PER_SECOND` seconds
    and the steady window runs from when all stream to when the first ends; the whole
    run, from the first chat to every reply's final save, is what holds the messages.
    """
    ramp = max(RAMP_SECONDS, sessions / TURN_STARTS_PER_SECOND)
    tokens = max(3, round(tps * (seconds + ramp)))
    env = ours_env(tps, stamped_reply(tokens), DATABASE_URL=url)
    pg = pg if backend == POSTGRES else None  # other backends leave the cluster idle
    async with running(f"server ({backend})", _command(backend, port()), env) as target:
        latencies = Latencies()
        ids, streams = await open_sessions(target, OURS, sessions, latencies)
        await asyncio.sleep(SETTLE_SECONDS)  # the new sessions' rows commit before the run
        first = _read(target, pg, streams, latencies)
        answered = Latencies()
        sent = asyncio.get_running_loop().create_task(_chats_on_time(target, ids, ramp, answered))
        budget = ramp + seconds * 3 + 30
        await asyncio.wait([sent, *(stream.has_tokens(1) for stream in streams)], timeout=budget)
        steady0 = _read(target, pg, streams, latencies)
        await asyncio.wait(
            [stream.has_tokens(tokens) for stream in streams],
            timeout=budget,
            return_when=asyncio.FIRST_COMPLETED,
        )
        steady1 = _read(target, pg, streams, latencies)
        await asyncio.wait(
            [sent, *(stream.has_tokens(tokens) for stream in streams)], timeout=budget
        )
        await asyncio.sleep(SETTLE_SECONDS)
        last = _read(target, pg, streams, latencies)
        sent.cancel()
        for stream in streams:
            stream.close()
    messages = await _stored_messages(backend, url)
    window = max(steady1.time - steady0.time, 1e-9)
    saturated = window < SATURATED_WINDOW
    if saturated:  # never all streaming at once: the whole run is the window (see fanout)
        steady0, steady1, window = first, last, last.time - first.time
    steady = Latencies(latencies.samples[steady0.samples : steady1.samples])
    tokens_per_s = (steady1.tokens - steady0.tokens) / window
    cpu = (steady1.cpu - steady0.cpu) / window
    return {
        "backend": backend,
        "sessions": sessions,
        "tps": tps,
        "reply_tokens": tokens,
        "ramp_s": ramp,
        "tokens_per_s": tokens_per_s,
        "cpu": cpu,
        "us_per_token": cpu / max(tokens_per_s, 1e-9) * 1e6,
        "threads_cpu": (steady1.threads - steady0.threads) / window,
        "p50_ms": steady.p50_ms(),
        "p99_ms": steady.p99_ms(),
        "chat_p50_ms": answered.p50_ms(),
        "chat_p99_ms": answered.p99_ms(),
        "window_s": window,
        "saturated": saturated,
        "run_s": last.time - first.time,
        "run_cpu_s": last.cpu - first.cpu,
        "run_threads_cpu_s": last.threads - first.threads,
        "delivered": last.tokens - first.tokens,
        "expected": tokens * sessions,
        "messages": messages,
        "postgres_cpu": (steady1.cluster - steady0.cluster) / window if pg else None,
        "postgres_run_cpu_s": last.cluster - first.cluster if pg else None,
    }


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per backend: medians over the repeats, the store's cost paired with each repeat's null."""
    null = {r["repeat"]: r for r in runs if r["backend"] == NONE}
    rows = []
    for backend in dict.fromkeys(r["backend"] for r in runs):
        mine = [r for r in runs if r["backend"] == backend and r["repeat"] in null]
        # Over the whole run, per delivered token (equal unless a run ran out of budget).
        per_token = [(_run_per_token(r) - _run_per_token(null[r["repeat"]])) * 1e6 for r in mine]
        per_message = [
            extra * r["delivered"] / r["messages"]
            for extra, r in zip(per_token, mine, strict=True)
            if r["messages"]
        ]
        cluster = [r["postgres_cpu"] for r in mine if r["postgres_cpu"] is not None]
        cluster_per_message = [
            r["postgres_run_cpu_s"] / r["messages"] * 1e6
            for r in mine
            if r["postgres_run_cpu_s"] is not None and r["messages"]
        ]
        rows.append(
            {
                "backend": backend,
                "repeats": len(mine),
                "cpu": _median([r["cpu"] for r in mine]),
                "tokens_per_s": _median([r["tokens_per_s"] for r in mine]),
                "us_per_token": _median([r["us_per_token"] for r in mine]),
                "run_us_per_token": _median([_run_per_token(r) * 1e6 for r in mine]),
                "threads_cpu": _median([r["threads_cpu"] for r in mine]),
                "p99_ms": _median([r["p99_ms"] for r in mine]),
                "chat_p50_ms": _median([r["chat_p50_ms"] for r in mine]),
                "chat_p99_ms": _median([r["chat_p99_ms"] for r in mine]),
                "run_s": _median([r["run_s"] for r in mine]),
                "messages": _median([r["messages"] for r in mine]),
                "saturated": any(r["saturated"] for r in mine),
                "store_us_per_token": _median(per_token) if backend != NONE else None,
                "store_us_per_token_range": _range(per_token) if backend != NONE else None,
                "store_us_per_message": _median(per_message),
                "store_us_per_message_range": _range(per_message),
                "postgres_cpu": _median(cluster),
                "postgres_us_per_message": _median(cluster_per_message),
            }
        )
    return rows


def _run_per_token(run: dict[str, Any]) -> float:
    """Server CPU seconds per delivered token over the whole run."""
    return float(run["run_cpu_s"]) / max(int(run["delivered"]), 1)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _range(values: list[float]) -> list[float] | None:
    return [min(values), max(values)] if values else None


async def store_costs(
    sessions: int, tps: float, seconds: float, repeats: int, alone_seconds: float
) -> dict[str, Any]:
    """The whole scenario: served runs, then each store alone; one Postgres cluster for both."""
    load_before = os.getloadavg()
    backends = [NONE, SQLITE, POSTGRES]
    async with contextlib.AsyncExitStack() as stack:
        pg: Postgres | None = None
        if POSTGRES_BIN is None:
            print("    Postgres is not installed (Debian's postgresql): skipping it", flush=True)
            backends.remove(POSTGRES)
        else:
            with step("store: a private Postgres cluster"):
                pg = await stack.enter_async_context(run_postgres())
        runs = await _served_runs(backends, pg, sessions, tps, seconds, repeats)
        alone = await _alone_runs(backends[1:], pg, sessions, tps, alone_seconds)
    return {
        "sessions": sessions,
        "tps": tps,
        "seconds": seconds,
        "ramp_s": max(RAMP_SECONDS, sessions / TURN_STARTS_PER_SECOND),
        "repeats": repeats,
        "stream_save_interval_s": storeload.SAVE_INTERVAL,
        "load_average": [load_before[0], os.getloadavg()[0]],
        "cores": os.cpu_count(),
        "runs": runs,
        "served": summarize(runs),
        "alone_sessions": storeload.SESSIONS,
        "alone": alone,
    }


async def _served_runs(
    backends: list[str],
    pg: Postgres | None,
    sessions: int,
    tps: float,
    seconds: float,
    repeats: int,
) -> list[dict[str, Any]]:
    """Every backend once per repeat, in turn."""
    if pg is not None:
        pin_cluster(pg, CLIENT_CORE)  # the server's core stays the server's
    runs = []
    for repeat in range(repeats):
        for backend in backends:
            label = f"{sessions:,} sessions x {tps:g} tokens/s, repeat {repeat + 1}/{repeats}"
            with step(f"store: server with {backend} store, {label}"):
                async with _database(backend, pg, f"served_{repeat}") as url:
                    run = await served_point(backend, url, pg, sessions, tps, seconds)
            runs.append({**run, "repeat": repeat})
            print(
                f"    {run['tokens_per_s']:,.0f} tokens/s at {run['cpu']:.0%} CPU "
                f"({run['us_per_token']:.1f} µs/token"
                + (", sat." if run["saturated"] else "")
                + f"), p99 {run['p99_ms']:.1f} ms, chat p99 {run['chat_p99_ms']:.0f} ms; "
                f"{run['run_cpu_s']:.2f} s CPU over the {run['run_s']:.0f} s run, "
                f"{run['messages']:,} messages",
                flush=True,
            )
    return runs


async def _alone_runs(
    backends: list[str], pg: Postgres | None, sessions: int, tps: float, seconds: float
) -> list[dict[str, Any]]:
    """Each store in this process, each way of saving (bench/storeload.py); the served
    rate with as many sessions as the served runs, saturation with 1,000."""
    if pg is not None:
        pin_cluster(pg, SERVER_CORE)  # this process is on the client's core
    with step(f"store: the served-rate driver alone (null store), {seconds:g} s"):
        pacing = await storeload.pacing_cpu(sessions, seconds)
    print(f"    {pacing:.2%} CPU: taken off the stores' figures at the served rate", flush=True)
    results = []
    for mode in storeload.MODES:
        served = mode == "served_rate"
        count = sessions if served else storeload.SESSIONS
        driver = pacing if served else 0.0
        for backend in backends:
            label = f"{backend} alone, {mode.replace('_', ' ')}, {count:,} sessions, {seconds:g} s"
            with step(f"store: {label}"):
                if backend == SQLITE:
                    result = await storeload.saturate_sqlite(mode, seconds, count, driver)
                else:
                    assert pg is not None
                    async with fresh_database(pg, f"alone_{mode}") as url:
                        result = await storeload.saturate_postgres(
                            pg, url, mode, seconds, count, driver
                        )
            if served:  # what that costs per token of the served load
                tokens_per_s = sessions * tps
                result["us_per_token"] = result["cpu"] / tokens_per_s * 1e6
                if result["postgres_cpu"] is not None:
                    result["postgres_us_per_token"] = result["postgres_cpu"] / tokens_per_s * 1e6
            results.append({"backend": backend, **result})
            print(
                f"    {result['saves_per_s']:,.0f} saves/s in {result['commits_per_s']:,.0f} "
                f"commits/s at {result['cpu']:.1%} CPU, {result['process_us_per_save']:.1f} µs "
                "per save",
                flush=True,
            )
    return results
