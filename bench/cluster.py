"""Cluster: what cluster mode (REDIS_URL) costs per token, and how fast it acts across workers.

Cost: the fan-out load (S sessions x T tokens/s; bench/fanout.py's token script, ramp,
64 chat connections and load generator) against (a) the single process (no REDIS_URL),
(b) a cluster of one worker and (c) a cluster of two, each run on a fresh database of
the private Postgres cluster (tests/postgres.py) that its workers share; SQLite files
when Postgres is not installed. Each worker creates (and so holds) half the sessions; a
session's stream is on worker (k // 2) % 2 and its chat goes to the other worker, so in
(c) half the streams are on a worker that does not hold their session (frames reach it
by Redis pub/sub: the cross-worker path) and half the chats are forwarded to the holder.
The figure is the CPU of every server-side process (each worker, redis-server, Postgres;
from /proc) per 1,000 tokens delivered in a fixed window that starts once every reply
streams; Redis's INFO (commandstats, traffic, memory) says what it did. Each mode runs
several times at each load, the modes taking turns, and the run with the median CPU per
token is the one reported.

Across workers, on a two-worker cluster: `POST /api/interrupt` sent to the worker that
does not hold the session (and, for comparison, to the one that does); a stream dropped
on one worker and resumed with `Last-Event-ID` on the other; a worker killed with
SIGKILL mid-turn, until a stream on the other worker shows the takeover.

Redis alone: redis-server driven with the outbox's own script (`APPEND`), K sessions x 1
frame per call from several connections, half the sessions' channels subscribed, for its
events/s per core.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import random
import signal
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio

from bench.fanout import CHAT_CONNECTIONS, RAMP_SECONDS, TURN_STARTS_PER_SECOND, stamped_reply
from bench.flavors import OURS, port
from bench.loadgen import (
    Connection,
    Latencies,
    Stream,
    now_us,
    open_stream,
    proc_cpu,
    proc_times,
)
from bench.pgcluster import cluster_cpu, pin_cluster
from bench.progress import step
from bench.target import CLIENT_CORE, HOST, SERVER_CORE, Target, ours_command, ours_env, running
from chatbot.cluster.outbox import bulk
from chatbot.cluster.scripts import APPEND
from tests.postgres import POSTGRES_BIN, Postgres, fresh_database, run_postgres
from tests.redis import Redis, run_redis

SINGLE, ONE, TWO = "single", "cluster_1", "cluster_2"
MODES = {SINGLE: 0, ONE: 1, TWO: 2}  # workers in the cluster (0: no cluster)
TARGET_RATIO = 1.5
SETTLE_SECONDS = 0.5
TAIL_SECONDS = 1.0
LEASE_SECONDS = 10.0  # TURN_LEASE_SECONDS, the default, stated for the record
FAILOVER_SESSIONS = 20
CEILING_SESSIONS = 1000
CEILING_CONNECTIONS = 4
CEILING_DEPTH = 16
EVENT_BUFFER = 1024  # EVENT_BUFFER_SIZE's default: the outbox's MAXLEN
EVENTS_TTL_MS = (1800 + 300) * 1000  # the outbox's stream expiry at the default settings

# What ran where (2 cores): the load generator (this process) is always on CLIENT_CORE.
CORES = {
    SINGLE: {"server": SERVER_CORE, "postgres": CLIENT_CORE},
    ONE: {"worker 1": SERVER_CORE, "redis-server": CLIENT_CORE, "postgres": CLIENT_CORE},
    TWO: {
        "worker 1": SERVER_CORE,
        "worker 2": CLIENT_CORE,
        "redis-server": SERVER_CORE,
        "postgres": CLIENT_CORE,
    },
}
QUEUE_CHATS = True  # as bench/fanout.py; False: as bench/store.py (see _send_chats)
ACROSS_CORES = {
    "worker A": SERVER_CORE,
    "worker B": CLIENT_CORE,
    "redis-server": SERVER_CORE,
    "postgres": CLIENT_CORE,
}


# ---- processes ---------------------------------------------------------------------------


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy, all cores (from /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def pin_process(pid: int, core: int) -> None:
    """Keep every thread of a process on one core (threads made later inherit it)."""
    if core >= (os.cpu_count() or 1):
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {core})


@dataclass
class RedisProbe:
    """The private redis-server: its process, and a client to read its INFO."""

    server: Redis
    pid: int
    client: redis.asyncio.Redis

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    async def stats(self) -> dict[str, Any]:
        """Calls and µs per command, bytes in and out, memory: Redis's own counters."""
        commands = await self.client.info("commandstats")
        stats = await self.client.info("stats")
        memory = await self.client.info("memory")
        return {
            "commands": {
                name.removeprefix("cmdstat_"): (value["calls"], value["usec"])
                for name, value in commands.items()
            },
            "net_in": stats["total_net_input_bytes"],
            "net_out": stats["total_net_output_bytes"],
            "memory": memory["used_memory"],
        }

    async def reset(self) -> None:
        """Empty, with its counters at zero."""
        await self.client.flushall()
        await self.client.config_resetstat()


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[RedisProbe]:
    """The tests' private redis-server (tests/redis.py), with its pid and a client."""
    async with run_redis() as server:
        client = redis.asyncio.Redis.from_url(server.url)
        try:
            pid = int((await client.info("server"))["process_id"])
            yield RedisProbe(server, pid, client)
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def servers(
    env: dict[str, str], cores: list[int], *, kill: bool = False
) -> AsyncIterator[list[Target]]:
    """One server per core in `cores`, all with `env`, each pinned (threads and all).

    Started one after another: the first applies the database's migrations alone. With
    `kill`, they end with SIGKILL, turns still running and all (nothing is measured then,
    and a worker's graceful stop would hand its turns to the others)."""
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for index, core in enumerate(cores, start=1):
            target = await stack.enter_async_context(
                running(f"worker {index}", ours_command(port()), env)
            )
            pin_process(target.pid, core)
            started.append(target)
        yield started
        if kill:
            for target in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target.pid, signal.SIGKILL)


def cluster_env(
    tps: float, reply: str, database: str, redis_url: str | None, prefix: str
) -> dict[str, str]:
    """Our server's settings (bench/target.py), in cluster mode when `redis_url` is given."""
    extra = {} if redis_url is None else {"REDIS_URL": redis_url, "REDIS_PREFIX": prefix}
    return ours_env(
        tps, reply, DATABASE_URL=database, TURN_LEASE_SECONDS=f"{LEASE_SECONDS:g}", **extra
    )


@dataclass
class Database:
    """Where the workers of a run keep their sessions: a fresh database on the private
    Postgres cluster for each run, or (without Postgres) a fresh SQLite file."""

    pg: Postgres | None
    runs: int = 0

    @property
    def kind(self) -> str:
        return "postgres" if self.pg is not None else "sqlite"

    @contextlib.asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        """A DATABASE_URL nothing has written to yet, for every worker of one run."""
        self.runs += 1
        if self.pg is None:
            with tempfile.TemporaryDirectory(prefix="chatbot-bench-") as folder:
                yield f"sqlite:///{folder}/bench.db"
            return
        async with fresh_database(self.pg, f"cluster_{self.runs}") as url:
            yield url

    def pin(self, core: int) -> None:
        if self.pg is not None:
            pin_cluster(self.pg, core)

    def cpu(self) -> float:
        """CPU seconds of the Postgres cluster (SQLite's work is in the workers')."""
        return cluster_cpu(self.pg) if self.pg is not None else 0.0


async def create_sessions(target: Target, count: int) -> list[str]:
    """`count` sessions made by (so held by) `target`."""
    connections = [await target.connect() for _ in range(min(32, max(count, 1)))]
    ids: list[str] = []

    async def make(connection: Connection, share: int) -> None:
        for _ in range(share):
            ids.append(await OURS.new_session(connection))

    shares = [
        count // len(connections) + (i < count % len(connections)) for i in range(len(connections))
    ]
    await asyncio.gather(*(make(c, n) for c, n in zip(connections, shares, strict=True)))
    for connection in connections:
        connection.close()
    return ids


# ---- cost --------------------------------------------------------------------------------


@dataclass
class Plan:
    """Where each session lives: who holds it, where its stream is, where its chat goes."""

    ids: list[str] = field(default_factory=list)
    holder: list[int] = field(default_factory=list)
    stream: list[int] = field(default_factory=list)
    chat: list[int] = field(default_factory=list)

    def cross(self, index: int) -> bool:
        return self.stream[index] != self.holder[index]


@dataclass(frozen=True)
class Reading:
    """One moment of a cost run."""

    time: float
    workers: list[float]
    redis: float
    kernel: list[float]  # of that, each worker's system time, then redis-server's
    database: float
    client: float
    machine: float
    tokens: int
    per_stream: list[int]
    local_samples: int
    cross_samples: int
    stats: dict[str, Any] | None


async def _plan(workers: list[Target], sessions: int) -> Plan:
    count = len(workers)
    made = await asyncio.gather(
        *(
            create_sessions(w, sessions // count + (i < sessions % count))
            for i, w in enumerate(workers)
        )
    )
    plan = Plan()
    for k in range(sessions):
        holder = k % count
        plan.ids.append(made[holder][k // count])
        plan.holder.append(holder)
        stream = (k // 2) % count
        plan.stream.append(stream)
        plan.chat.append((stream + 1) % count)
    return plan


async def _open_streams(
    workers: list[Target], plan: Plan, local: Latencies, cross: Latencies
) -> list[Stream]:
    opened: list[Stream] = []
    for start in range(0, len(plan.ids), 200):  # at most 200 connects in flight
        batch = range(start, min(start + 200, len(plan.ids)))
        opened += await asyncio.gather(
            *(
                open_stream(
                    HOST,
                    workers[plan.stream[k]].port,
                    "GET",
                    OURS.stream_path(plan.ids[k]),
                    latencies=cross if plan.cross(k) else local,
                )
                for k in batch
            )
        )
    return opened


async def _send_chats(
    workers: list[Target], plan: Plan, ramp: float, answered: Latencies, failed: list[str]
) -> None:
    """One chat per session to its chat worker, spread evenly over `ramp` seconds, on
    bench/fanout.py's 64 keep-alive connections (split between the workers): as there, a
    chat waits for the answer to the one before it on its connection, so a server that
    answers slowly gets its turns later rather than all at once. With QUEUE_CHATS off, a
    chat never waits (bench/store.py's way): a busy pool opens one more connection."""
    count = CHAT_CONNECTIONS // len(workers)
    pools = {index: [await w.connect() for _ in range(count)] for index, w in enumerate(workers)}
    opened = [c for pool in pools.values() for c in pool]
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def send(connection: Connection, k: int) -> None:
        delay = start + ramp * k / len(plan.ids) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        began = loop.time()
        response = await connection.request(
            "POST", "/api/chat", json={"session_id": plan.ids[k], "message": "go"}
        )
        if response.status != 200:
            failed.append(f"{response.status} {response.body[:200].decode(errors='replace')}")
        answered.samples.append(round((loop.time() - began) * 1e6))

    async def in_turn(connection: Connection, mine: list[int]) -> None:
        for k in mine:
            await send(connection, k)

    async def at_once(k: int) -> None:
        delay = start + ramp * k / len(plan.ids) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        pool = pools[plan.chat[k]]
        connection = pool.pop() if pool else await workers[plan.chat[k]].connect()
        if connection not in opened:
            opened.append(connection)
        await send(connection, k)
        pool.append(connection)

    try:
        if QUEUE_CHATS:
            queues: list[tuple[Connection, list[int]]] = []
            for index, pool in pools.items():
                mine = [k for k in range(len(plan.ids)) if plan.chat[k] == index]
                queues += [(c, mine[i :: len(pool)]) for i, c in enumerate(pool)]
            await asyncio.gather(*(in_turn(c, mine) for c, mine in queues))
        else:
            await asyncio.gather(*(at_once(k) for k in range(len(plan.ids))))
    finally:
        for connection in opened:
            connection.close()


async def cost_point(
    mode: str, probe: RedisProbe, db: Database, sessions: int, tps: float, window: float
) -> dict[str, Any]:
    """One mode at S x T: rate, latency and every server-side process's CPU in the window."""
    async with db.fresh() as database:
        return await _cost_point(mode, probe, db, database, sessions, tps, window)


async def _cost_point(
    mode: str,
    probe: RedisProbe,
    db: Database,
    database: str,
    sessions: int,
    tps: float,
    window: float,
) -> dict[str, Any]:
    count = MODES[mode]
    ramp = max(RAMP_SECONDS, sessions / TURN_STARTS_PER_SECOND)
    # The window starts once every stream has its first token, or after `budget`: replies
    # last long enough that the first one still streams at the window's end even then (the
    # servers are killed after the window).
    budget = 2 * ramp + 10
    tokens = max(3, round(tps * (budget + SETTLE_SECONDS + window + TAIL_SECONDS)))
    url = probe.server.url if count else None
    prefix = f"cost{count}:"
    env = cluster_env(tps, stamped_reply(tokens), database, url, prefix)
    cores = [core for name, core in CORES[mode].items() if name.startswith(("worker", "server"))]
    await probe.reset()
    db.pin(CORES[mode]["postgres"])
    async with servers(env, cores, kill=True) as workers:
        if count:
            pin_process(probe.pid, CORES[mode]["redis-server"])
        plan = await _plan(workers, sessions)
        local, cross = Latencies(), Latencies()
        streams = await _open_streams(workers, plan, local, cross)
        await asyncio.sleep(SETTLE_SECONDS)  # the new sessions' rows commit before the run

        pids = [w.pid for w in workers] + ([probe.pid] if count else [])

        async def read() -> Reading:
            return Reading(
                time.monotonic(),
                [w.cpu() for w in workers],
                probe.cpu() if count else 0.0,
                [proc_times(pid)[1] for pid in pids],
                db.cpu(),
                proc_cpu(os.getpid()),
                machine_cpu(),
                sum(s.tokens for s in streams),
                [s.tokens for s in streams],
                len(local.samples),
                len(cross.samples),
                await probe.stats() if count else None,
            )

        idle = await _idle_session(probe, prefix, plan.ids) if count else None
        answered, failed = Latencies(), []
        sent = asyncio.get_running_loop().create_task(
            _send_chats(workers, plan, ramp, answered, failed)
        )
        await asyncio.wait([sent, *(s.has_tokens(1) for s in streams)], timeout=budget)
        all_streaming = all(s.tokens for s in streams)
        await asyncio.sleep(SETTLE_SECONDS)
        first = await read()
        await asyncio.sleep(window)
        last = await read()
        if sent.done() and sent.exception() is not None:
            failed.append(f"chats stopped: {sent.exception()!r}")
        sent.cancel()
        for s in streams:
            s.close()
    result = _cost_result(mode, plan, sessions, tps, tokens, ramp, first, last, local, cross)
    result["database"] = db.kind
    if db.pg is None:
        result["cores"] = {k: v for k, v in result["cores"].items() if k != "postgres"}
    if result["redis"] is not None and idle is not None:
        result["redis"] |= idle
    return result | {
        "all_streaming": all_streaming,
        "chat_p50_ms": answered.p50_ms(),
        "chat_p99_ms": answered.p99_ms(),
        "chats_failed": len(failed),
        "chat_errors": sorted(set(failed))[:5],
    }


async def _idle_session(probe: RedisProbe, prefix: str, ids: list[str]) -> dict[str, Any]:
    """What Redis keeps for a session that exists and is streamed, before any chat: MEMORY
    USAGE of its keys, over a sample of sessions."""
    sample = ids[:: max(1, len(ids) // 50)]
    sizes = {"lease": 0, "events": 0}
    for sid in sample:
        for kind in sizes:
            sizes[kind] += await probe.client.memory_usage(f"{prefix}{kind}:{sid}", samples=0) or 0
    return {f"idle_{kind}_bytes": size / len(sample) for kind, size in sizes.items()}


def _cost_result(
    mode: str,
    plan: Plan,
    sessions: int,
    tps: float,
    tokens: int,
    ramp: float,
    first: Reading,
    last: Reading,
    local: Latencies,
    cross: Latencies,
) -> dict[str, Any]:
    window = last.time - first.time
    delivered = max(last.tokens - first.tokens, 1)
    per_k = 1000 / delivered  # CPU seconds per 1,000 tokens = CPU seconds x this
    workers = [b - a for a, b in zip(first.workers, last.workers, strict=True)]
    redis_cpu = last.redis - first.redis
    kernel = [b - a for a, b in zip(first.kernel, last.kernel, strict=True)]
    database_cpu = last.database - first.database
    steady_local = Latencies(local.samples[first.local_samples : last.local_samples])
    steady_cross = Latencies(cross.samples[first.cross_samples : last.cross_samples])
    both = Latencies(steady_local.samples + steady_cross.samples)
    result: dict[str, Any] = {
        "mode": mode,
        "workers": MODES[mode],
        "sessions": sessions,
        "tps": tps,
        "reply_tokens": tokens,
        "ramp_s": ramp,
        "window_s": window,
        "offered_per_s": sessions * tps,
        "tokens_per_s": delivered / window,
        # Streams that got tokens in the window, and those whose reply was still going at
        # its end: both S when every reply streamed all through the window.
        "streaming_in_window": sum(
            b > a for a, b in zip(first.per_stream, last.per_stream, strict=True)
        ),
        "unfinished_at_end": sum(b < tokens for b in last.per_stream),
        "saturated": delivered / window < 0.95 * sessions * tps,
        "cross_streams": sum(plan.cross(k) for k in range(sessions)),
        "forwarded_chats": sum(plan.chat[k] != plan.holder[k] for k in range(sessions)),
        "cores": CORES[mode],
        "worker_cpu": [cpu / window for cpu in workers],
        "redis_cpu": redis_cpu / window,
        "database_cpu": database_cpu / window,
        "client_cpu": (last.client - first.client) / window,
        # Busy cores in the window that none of the processes above used: other work on
        # the machine (the runs are only comparable when this is small).
        "other_cpu": (
            (last.machine - first.machine)
            - sum(workers)
            - redis_cpu
            - database_cpu
            - (last.client - first.client)
        )
        / window,
        "workers_cpu_s_per_1k": sum(workers) * per_k,
        # The part of it spent in the kernel (system time): sockets, wakeups, scheduling.
        "workers_kernel_s_per_1k": sum(kernel[: len(workers)]) * per_k,
        "redis_kernel_s_per_1k": sum(kernel[len(workers) :]) * per_k,
        "redis_cpu_s_per_1k": redis_cpu * per_k,
        "database_cpu_s_per_1k": database_cpu * per_k,
        "total_cpu_s_per_1k": (sum(workers) + redis_cpu + database_cpu) * per_k,
        "p50_ms": both.p50_ms(),
        "p99_ms": both.p99_ms(),
        "local_p50_ms": steady_local.p50_ms(),
        "local_p99_ms": steady_local.p99_ms(),
        "cross_p50_ms": steady_cross.p50_ms(),
        "cross_p99_ms": steady_cross.p99_ms(),
        "redis": None,
    }
    if first.stats is not None and last.stats is not None:
        result["redis"] = _redis_work(first.stats, last.stats, window, delivered)
    return result


def _redis_work(
    first: dict[str, Any], last: dict[str, Any], window: float, tokens: int
) -> dict[str, Any]:
    """What Redis did in the window, from its counters: per second and per token."""
    calls: dict[str, float] = {}
    usec: dict[str, float] = {}
    for name, (count, micros) in last["commands"].items():
        before = first["commands"].get(name, (0, 0))
        if count - before[0]:
            calls[name] = (count - before[0]) / window
            usec[name] = (micros - before[1]) / window
    frames = calls.get("xadd", 0.0)
    trips = calls.get("evalsha", 0.0)
    # Redis counts the commands a script runs as well as the script's call: those are left
    # out of what the workers sent, and out of the time (the script's includes theirs). In
    # the window no chat is sent, so GET and PUBLISH come from the script alone.
    scripted = ("get", "xadd", "pexpire", "publish") if trips else ()
    sent = sum(calls.values()) - sum(calls.get(name, 0.0) for name in scripted)
    busy = sum(usec.values()) - sum(usec.get(name, 0.0) for name in scripted)
    return {
        "calls_per_s": calls,
        "usec_per_s": usec,
        "events_per_s": frames,
        "trips_per_s": trips,
        "frames_per_trip": frames / trips if trips else None,
        "script_exists_per_trip": calls.get("script|exists", 0.0) / trips if trips else None,
        "commands_per_token": sent * window / tokens,
        "in_redis_us_per_event": busy / frames if frames else None,
        "net_in_bytes_per_token": (last["net_in"] - first["net_in"]) / tokens,
        "net_out_bytes_per_token": (last["net_out"] - first["net_out"]) / tokens,
        "memory_mb": last["memory"] / 2**20,
    }


# ---- across workers: interrupt and resume ------------------------------------------------


class _Watch:
    """Follows a stream: when the reply is ticking, and when its turn is over."""

    def __init__(self, ticks: int) -> None:
        loop = asyncio.get_running_loop()
        self.ticks = ticks
        self.ticking: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[float] = loop.create_future()

    def see(self, stream: Stream, event: bytes) -> None:
        if not self.ticking.done():
            if stream.tokens >= self.ticks:
                self.ticking.set_result(None)
        elif (
            b"event: state" in event and b'"is_processing":false' in event and not self.ended.done()
        ):
            self.ended.set_result(time.monotonic())


async def interrupt_across(a: Target, b: Target, repeats: int) -> dict[str, Any]:
    """Sessions held by A, replies streaming; `POST /api/interrupt` to B (and, in turn, A)."""
    results: dict[str, dict[str, list[float]]] = {
        name: {"answer": [], "turn_end": []} for name in ("other", "holder")
    }
    to_a, to_b = await a.connect(), await b.connect()
    for _ in range(repeats):
        for name, via in (("other", to_b), ("holder", to_a)):
            sid = await OURS.new_session(to_a)
            watch = _Watch(3)
            stream = await open_stream(
                HOST, a.port, "GET", OURS.stream_path(sid), on_event=watch.see
            )
            response = await to_a.request(
                "POST", "/api/chat", json={"session_id": sid, "message": "go"}
            )
            assert response.status == 200, response.body[:300]
            await asyncio.wait_for(watch.ticking, 10)
            sent = time.monotonic()
            response = await via.request("POST", "/api/interrupt", json={"session_id": sid})
            answered = time.monotonic()
            assert response.status == 200, response.body[:300]
            ended = await asyncio.wait_for(watch.ended, 5)
            results[name]["answer"].append((answered - sent) * 1000)
            results[name]["turn_end"].append((ended - sent) * 1000)
            stream.close()
    to_a.close()
    to_b.close()
    return {
        "repeats": repeats,
        **{
            f"{name}_{what}_{stat}_ms": value
            for name, series in results.items()
            for what, samples in series.items()
            for stat, value in _stats(samples).items()
        },
    }


async def resume_across(a: Target, b: Target, repeats: int, read_first: int) -> dict[str, Any]:
    """A stream on A reads some events, hangs up; it reconnects to B (and, in turn, to A)
    with `Last-Event-ID` while the reply goes on: the time to the first replayed event."""
    delays: dict[str, list[float]] = {"other": [], "holder": []}
    exact: dict[str, int] = {"other": 0, "holder": 0}
    to_a = await a.connect()
    for _ in range(repeats):
        for name, where in (("other", b), ("holder", a)):
            sid = await OURS.new_session(to_a)
            away = await open_stream(HOST, a.port, "GET", OURS.stream_path(sid))
            response = await to_a.request(
                "POST", "/api/chat", json={"session_id": sid, "message": "go"}
            )
            assert response.status == 200, response.body[:300]
            await asyncio.wait_for(away.has_tokens(read_first), 10)
            last_id = int(away.last_event_id or 0)
            away.close()
            await asyncio.sleep(0.1)  # away for a while: events pile up in the stream
            first: list[bytes] = []
            sent = now_us()
            back = await open_stream(
                HOST,
                where.port,
                "GET",
                OURS.stream_path(sid),
                headers={"Last-Event-ID": str(last_id)},
                on_event=_keep_first(first),
            )
            delays[name].append((await asyncio.wait_for(back.first_event, 10) - sent) / 1000)
            head = first[0].split(b"\n", 2)
            exact[name] += head[0] == b"id: %d" % (last_id + 1) and head[1] != b"event: snapshot"
            back.close()
            await to_a.request("POST", "/api/interrupt", json={"session_id": sid})
    to_a.close()
    return {
        "repeats": repeats,
        "read_first": read_first,
        **{
            f"{name}_{stat}_ms": value
            for name, samples in delays.items()
            for stat, value in _stats(samples).items()
        },
        "other_exact": exact["other"],
        "holder_exact": exact["holder"],
    }


def _keep_first(into: list[bytes]) -> Any:
    """A stream callback that keeps the first event it sees."""

    def see(stream: Stream, event: bytes) -> None:
        if not into:
            into.append(event)

    return see


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max": ordered[-1],
    }


@contextlib.asynccontextmanager
async def two_workers(
    probe: RedisProbe, db: Database, tps: float, reply: str, prefix: str
) -> AsyncIterator[list[Target]]:
    """Workers A and B of a fresh cluster (empty Redis, a database of its own)."""
    await probe.reset()
    async with db.fresh() as database:
        db.pin(ACROSS_CORES["postgres"])
        env = cluster_env(tps, reply, database, probe.server.url, prefix)
        async with servers(env, [ACROSS_CORES["worker A"], ACROSS_CORES["worker B"]]) as pair:
            pin_process(probe.pid, ACROSS_CORES["redis-server"])
            yield pair


async def across(
    probe: RedisProbe, db: Database, interrupt_repeats: int, resume_repeats: int
) -> dict[str, Any]:
    """Interrupt and resume on a two-worker cluster: replies of 100 tokens at 50 tokens/s."""
    async with two_workers(probe, db, 50, stamped_reply(100), "across:") as (a, b):
        with step(f"cluster: interrupt on the other worker, {interrupt_repeats} x 2"):
            stop = await interrupt_across(a, b, interrupt_repeats)
        print(
            f"    answer p50 {stop['other_answer_p50_ms']:.2f} ms via the other worker, "
            f"{stop['holder_answer_p50_ms']:.2f} ms via the holder",
            flush=True,
        )
        with step(f"cluster: resume on the other worker, {resume_repeats} x 2"):
            back = await resume_across(a, b, resume_repeats, 10)
        print(
            f"    first replayed event p50 {back['other_p50_ms']:.2f} ms on the other worker, "
            f"{back['holder_p50_ms']:.2f} ms on the holder; exact "
            f"{back['other_exact']}/{resume_repeats} and {back['holder_exact']}/{resume_repeats}",
            flush=True,
        )
    return {
        "cores": ACROSS_CORES,
        "tps": 50,
        "reply_tokens": 100,
        "interrupt": stop,
        "resume": back,
    }


# ---- failover ----------------------------------------------------------------------------


async def failover(probe: RedisProbe, db: Database, repeat: int, seed: int) -> dict[str, Any]:
    """A holds FAILOVER_SESSIONS running turns, their streams on B; A gets SIGKILL. Per
    stream: the time to its first sign of the takeover (a snapshot, or any event other than
    the dead worker's deltas), and to the first token of the continued reply."""
    tps = 20
    reply = stamped_reply(round(tps * 30))
    async with two_workers(probe, db, tps, reply, f"failover{repeat}:") as (a, b):
        ids = await create_sessions(a, FAILOVER_SESSIONS)
        killed = [0]
        signs: dict[str, list[int]] = {"takeover": [], "token": []}
        kinds: list[str] = []
        all_back = asyncio.Event()

        def watcher() -> Any:
            seen = {"takeover": False, "token": False}

            def see(stream: Stream, event: bytes) -> None:
                if not killed[0]:
                    return
                received = now_us()
                head = event.split(b"\n", 2)
                kind = (
                    head[1][7:].decode() if len(head) > 1 and head[1].startswith(b"event:") else ""
                )
                old_delta = kind == "message.delta" and stream.last_stamp < killed[0]
                if not seen["takeover"] and not old_delta:
                    seen["takeover"] = True
                    signs["takeover"].append(received - killed[0])
                    kinds.append(kind)
                if not seen["token"] and kind == "message.delta" and stream.last_stamp > killed[0]:
                    seen["token"] = True
                    signs["token"].append(received - killed[0])
                    if len(signs["token"]) == len(ids):
                        all_back.set()

            return see

        streams = [
            await open_stream(HOST, b.port, "GET", OURS.stream_path(sid), on_event=watcher())
            for sid in ids
        ]
        to_b = await b.connect()
        for sid in ids:
            response = await to_b.request(
                "POST", "/api/chat", json={"session_id": sid, "message": "go"}
            )
            assert response.status == 200, response.body[:300]
        await asyncio.wait([s.has_tokens(5) for s in streams], timeout=10)
        # Somewhere in A's renewal cycle (every TURN_LEASE_SECONDS / 3), as a crash would be.
        await asyncio.sleep(random.Random(seed).uniform(0, LEASE_SECONDS / 3))
        killed[0] = now_us()
        os.kill(a.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_back.wait(), LEASE_SECONDS + 10)
        for sid in ids:  # stop the continued replies: B serves these now
            with contextlib.suppress(Exception):
                await to_b.request("POST", "/api/interrupt", json={"session_id": sid})
        to_b.close()
        for s in streams:
            s.close()
    takeover = sorted(t / 1e6 for t in signs["takeover"])
    token = sorted(t / 1e6 for t in signs["token"])
    return {
        "repeat": repeat,
        "sessions": len(ids),
        "lease_s": LEASE_SECONDS,
        "taken_over": len(takeover),
        "first_s": takeover[0] if takeover else None,
        "median_s": statistics.median(takeover) if takeover else None,
        "last_s": takeover[-1] if takeover else None,
        "token_median_s": statistics.median(token) if token else None,
        "token_last_s": token[-1] if token else None,
        "first_sign": max(set(kinds), key=kinds.count) if kinds else None,
    }


# ---- Redis alone ---------------------------------------------------------------------------


class _Replies(asyncio.Protocol):
    """A connection that counts the script's replies (`*0\\r\\n`: no lease lost)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.error = b""
        self.wake = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)
        if b"-" in data and not self.error:
            self.error = data[:200]
        self.wake.set()

    @property
    def replies(self) -> int:
        return self.bytes // 4


class _Sink(asyncio.Protocol):
    """A subscriber that reads and drops what it is sent (a worker's mirror feed)."""

    def __init__(self) -> None:
        self.bytes = 0

    def data_received(self, data: bytes) -> None:
        self.bytes += len(data)


class _Batches:
    """The outbox's calls for one connection's sessions: K sessions x 1 frame each."""

    def __init__(self, sha: bytes, token: bytes, prefix: str, sessions: list[int], k: int) -> None:
        self.k = k
        self.sessions = sessions
        self.seq = dict.fromkeys(sessions, 0)
        self.at = 0
        self.head = (
            b"*%d\r\n" % (2 + 1 + 3 * k + 3 + 3 * k)
            + bulk(b"EVALSHA")
            + bulk(sha)
            + bulk(b"%d" % (3 * k))
        )
        self.keys = {
            s: b"".join(
                bulk(f"{prefix}{kind}:s{s:06d}".encode()) for kind in ("lease", "events", "live")
            )
            for s in sessions
        }
        self.argv = bulk(token) + bulk(b"%d" % EVENT_BUFFER) + bulk(b"%d" % EVENTS_TTL_MS)
        self.stamp = now_us()

    def next(self) -> bytes:
        chosen = [self.sessions[(self.at + i) % len(self.sessions)] for i in range(self.k)]
        self.at = (self.at + self.k) % len(self.sessions)
        parts = [self.head, *(self.keys[s] for s in chosen), self.argv]
        for s in chosen:
            seq = self.seq[s] = self.seq[s] + 1
            self.stamp += 1
            frame = b'id: %d\nevent: message.delta\ndata: {"id":"m_%012x","delta":" %d"}\n\n' % (
                seq,
                s,
                self.stamp,
            )
            parts += (b"$1\r\n1\r\n", bulk(b"%d-0" % seq), bulk(frame))
        return b"".join(parts)


async def redis_ceiling(probe: RedisProbe, k: int, seconds: float) -> dict[str, Any]:
    """The outbox's script alone at full speed, K sessions x 1 frame per call."""
    await probe.reset()
    pin_process(probe.pid, SERVER_CORE)  # this process, the driver, is on the client's core
    prefix, token = f"ceiling{k}:", b"bench-worker"
    client = probe.client
    sha = (await client.script_load(APPEND)).encode()
    pipe = client.pipeline(transaction=False)
    for s in range(CEILING_SESSIONS):
        pipe.set(f"{prefix}lease:s{s:06d}", token)
    await pipe.execute()
    loop = asyncio.get_running_loop()
    port_ = probe.server.port
    # Half the sessions have a worker following them, over two pub/sub connections.
    sinks = []
    for half in (1, 3):
        transport, sink = await loop.create_connection(_Sink, HOST, port_)
        channels = [f"{prefix}live:s{s:06d}".encode() for s in range(half, CEILING_SESSIONS, 4)]
        transport.write(
            b"*%d\r\n" % (1 + len(channels)) + bulk(b"SUBSCRIBE") + b"".join(map(bulk, channels))
        )
        sinks.append((transport, sink))
    await asyncio.sleep(0.2)
    drivers = []
    for c in range(CEILING_CONNECTIONS):
        transport, replies = await loop.create_connection(_Replies, HOST, port_)
        mine = list(range(c, CEILING_SESSIONS, CEILING_CONNECTIONS))
        drivers.append((transport, replies, _Batches(sha, token, prefix, mine, k)))
    stop = [False]

    async def drive(transport: Any, replies: _Replies, batches: _Batches) -> None:
        sent = 0
        while not stop[0]:
            while sent - replies.replies < CEILING_DEPTH:
                transport.write(batches.next())
                sent += 1
            replies.wake.clear()
            await replies.wake.wait()
            if replies.error:
                raise RuntimeError(f"redis answered {replies.error!r}")

    tasks = [asyncio.create_task(drive(*d)) for d in drivers]
    await asyncio.sleep(min(1.0, seconds / 3))  # warm: every stream exists

    def reading() -> tuple[float, float, float, int]:
        return (
            time.monotonic(),
            probe.cpu(),
            proc_cpu(os.getpid()),
            sum(replies.replies for _, replies, _ in drivers),
        )

    t0, cpu0, own0, calls0 = reading()
    mem0 = (await client.info("memory"))["used_memory"]
    await asyncio.sleep(seconds)
    t1, cpu1, own1, calls1 = reading()
    stop[0] = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for transport, _, _ in drivers:
        transport.close()
    for transport, _ in sinks:
        transport.close()
    full = await _full_buffer_bytes(client, sha, prefix)
    window = t1 - t0
    events = (calls1 - calls0) * k / window
    cpu = (cpu1 - cpu0) / window
    return {
        "batch": k,
        "connections": CEILING_CONNECTIONS,
        "depth": CEILING_DEPTH,
        "sessions": CEILING_SESSIONS,
        "followed": CEILING_SESSIONS // 2,
        "events_per_s": events,
        "redis_cpu": cpu,
        "driver_cpu": (own1 - own0) / window,
        "events_per_core_s": events / max(cpu, 1e-9),
        "us_per_event": cpu / max(events, 1e-9) * 1e6,
        "memory_mb": mem0 / 2**20,
        "full_buffer_kib": full / 1024,
    }


async def _full_buffer_bytes(client: redis.asyncio.Redis, sha: bytes, prefix: str) -> float:
    """Memory of one session's event stream at EVENT_BUFFER frames: one call with more
    frames than that, trimmed by the script's own `MAXLEN ~`, then MEMORY USAGE."""
    lease, key = f"{prefix}lease:full", f"{prefix}events:full"
    await client.set(lease, b"bench-worker")
    count = EVENT_BUFFER + 100
    stamp = now_us()
    args: list[Any] = [b"bench-worker", EVENT_BUFFER, EVENTS_TTL_MS, count]
    for seq in range(1, count + 1):
        frame = b'id: %d\nevent: message.delta\ndata: {"id":"m_%012x","delta":" %d"}\n\n' % (
            seq,
            0,
            stamp + seq,
        )
        args += (seq, frame)
    await client.evalsha(sha.decode(), 3, lease, key, f"{prefix}live:full", *args)
    length = await client.xlen(key)
    used = await client.memory_usage(key, samples=0)
    return float(used or 0) * EVENT_BUFFER / max(length, 1)


# ---- the whole scenario ----------------------------------------------------------------------


LABELS = {SINGLE: "single process", ONE: "cluster of 1 worker", TWO: "cluster of 2 workers"}


async def cluster_costs(
    points: list[tuple[int, float]],
    window: float,
    repeats: int,
    interrupt_repeats: int,
    resume_repeats: int,
    failover_repeats: int,
    batches: list[int],
    ceiling_seconds: float,
) -> dict[str, Any]:
    """Every part in turn, on one private redis-server and one private Postgres cluster
    (a fresh database per run; SQLite files when Postgres is not installed)."""
    load_before = os.getloadavg()
    async with contextlib.AsyncExitStack() as stack:
        pg: Postgres | None = None
        if POSTGRES_BIN is None:
            print("    Postgres is not installed (Debian's postgresql): SQLite files", flush=True)
        else:
            with step("cluster: a private Postgres cluster, the workers' shared database"):
                pg = await stack.enter_async_context(run_postgres())
        db = Database(pg)
        probe = await stack.enter_async_context(private_redis())
        costs = []
        for sessions, tps in points:
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for repeat in range(repeats):
                # The modes take turns, each repeat in another order: a drift of the
                # machine's speed over the minutes falls on all of them alike.
                order = list(MODES)[repeat % len(MODES) :] + list(MODES)[: repeat % len(MODES)]
                for mode in order:
                    label = f"{LABELS[mode]}, {sessions:,} sessions x {tps:g} tokens/s"
                    with step(f"cluster cost: {label} ({repeat + 1}/{repeats})"):
                        point = await cost_point(mode, probe, db, sessions, tps, window)
                    runs[mode].append(point)
                    _print_cost(point, db.kind)
            for mode in MODES:
                costs.append(_median_run(runs[mode]))
        moved = await across(probe, db, interrupt_repeats, resume_repeats)
        failovers = []
        for repeat in range(failover_repeats):
            with step(
                f"cluster: failover {repeat + 1}/{failover_repeats}, SIGKILL to a worker "
                f"running {FAILOVER_SESSIONS} turns (TURN_LEASE_SECONDS={LEASE_SECONDS:g})"
            ):
                result = await failover(probe, db, repeat, seed=repeat)
            failovers.append(result)
            print(
                f"    {result['taken_over']}/{result['sessions']} streams saw the takeover, "
                f"after {_seconds(result['first_s'])} to {_seconds(result['last_s'])}; "
                f"the reply went on after {_seconds(result['token_last_s'])} at most",
                flush=True,
            )
        ceiling = []
        for k in batches:
            with step(f"cluster: redis-server alone, {k} session(s) x 1 frame per call"):
                result = await redis_ceiling(probe, k, ceiling_seconds)
            ceiling.append(result)
            print(
                f"    {result['events_per_s']:,.0f} events/s at {result['redis_cpu']:.0%} of its "
                f"core ({result['events_per_core_s']:,.0f} per core-second, "
                f"{result['us_per_event']:.2f} µs/event); driver {result['driver_cpu']:.0%}",
                flush=True,
            )
    return {
        "points": [list(point) for point in points],
        "window_s": window,
        "repeats": repeats,
        "lease_s": LEASE_SECONDS,
        "target_ratio": TARGET_RATIO,
        "store": db.kind,  # one database, shared by the workers of a run
        "cores": os.cpu_count(),
        "client_core": CLIENT_CORE,
        "hiredis": importlib.util.find_spec("hiredis") is not None,  # redis-py's C parser
        "load_average": [load_before[0], os.getloadavg()[0]],
        "costs": costs,
        "ratios": _ratios(costs),
        "across": moved,
        "failover": failovers,
        "ceiling": ceiling,
        "capacity": [c for c in (_capacity(costs, point, ceiling) for point in points) if c],
    }


def _print_cost(point: dict[str, Any], store: str) -> None:
    print(
        f"    {point['tokens_per_s']:,.0f} tokens/s, p50 {point['p50_ms']:.1f} ms, "
        f"p99 {point['p99_ms']:.1f} ms; {point['total_cpu_s_per_1k']:.3f} CPU-s per "
        f"1,000 tokens (workers {point['workers_cpu_s_per_1k']:.3f}, "
        f"redis {point['redis_cpu_s_per_1k']:.3f}, "
        f"{store} {point['database_cpu_s_per_1k']:.3f}); worker CPU "
        + ", ".join(f"{c:.0%}" for c in point["worker_cpu"])
        + f", redis {point['redis_cpu']:.0%}",
        flush=True,
    )
    if point["chats_failed"]:
        print(f"    {point['chats_failed']} chats failed: {point['chat_errors']}")


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose CPU per token is the median of the repeats (all its figures together),
    with every repeat's CPU per token alongside, for the spread."""
    ordered = sorted(runs, key=lambda run: run["total_cpu_s_per_1k"])
    return ordered[(len(ordered) - 1) // 2] | {
        "repeats_total_cpu_s_per_1k": [run["total_cpu_s_per_1k"] for run in runs]
    }


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _ratios(costs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per load point: each cluster's CPU per token over the single process's."""
    rows = []
    for point in dict.fromkeys((c["sessions"], c["tps"]) for c in costs):
        by = {c["mode"]: c for c in costs if (c["sessions"], c["tps"]) == point}
        base = by[SINGLE]["total_cpu_s_per_1k"]
        rows.append(
            {
                "sessions": point[0],
                "tps": point[1],
                **{
                    mode: by[mode]["total_cpu_s_per_1k"] / base for mode in (ONE, TWO) if mode in by
                },
            }
        )
    return rows


def _capacity(
    costs: list[dict[str, Any]], point: tuple[int, float], ceiling: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """How many workers one Redis serves, at (c)'s per-worker event rate and at a busy one's."""
    two = next(
        (
            c
            for c in costs
            if c["mode"] == TWO and c["redis"] and (c["sessions"], c["tps"]) == tuple(point)
        ),
        None,
    )
    if two is None or not ceiling:
        return None
    work = two["redis"]
    per_worker = work["events_per_s"] / two["workers"]
    worker_cpu = sum(two["worker_cpu"]) / two["workers"]
    busy_worker = per_worker / max(worker_cpu, 1e-9)  # events/s of a worker at 100% of a core
    batch = work["frames_per_trip"] or 1.0
    nearest = min(ceiling, key=lambda r: abs(r["batch"] - batch))
    in_situ = work["events_per_s"] / max(two["redis_cpu"], 1e-9)  # all of (c)'s Redis work
    return {
        "sessions": two["sessions"],
        "tps": two["tps"],
        "per_worker_events_per_s": per_worker,
        "worker_cpu": worker_cpu,
        "busy_worker_events_per_s": busy_worker,
        "batch_in_c": batch,
        "ceiling_batch": nearest["batch"],
        "ceiling_events_per_core_s": nearest["events_per_core_s"],
        "in_situ_events_per_core_s": in_situ,
        "workers_at_c_rate": nearest["events_per_core_s"] / per_worker,
        "busy_workers": nearest["events_per_core_s"] / busy_worker,
        "busy_workers_in_situ": in_situ / busy_worker,
    }


__all__ = ["cluster_costs"]
