"""A store alone, in this process: its CPU per save, and messages/s at saturation.

No HTTP and no agent: sessions' messages are saved from the event loop, and what was
committed is counted in the database after a final flush. Three ways of asking:

- served rate: every session re-saves a 3 KB streaming reply every
  STREAM_SAVE_INTERVAL_SECONDS, as the server does while its replies stream; the CPU
  this costs without the server's own work around it (and its noise), less the
  driver's own timer ticks (measured against the null store).
- batched: as fast as the store takes them, one producer saving a message to each of
  1,000 sessions in turn and awaiting `flush()` once per round, so each commit carries
  a round; what the shared batch writer sustains.
- a flush per message: 1,000 concurrent users each save one message and await
  `flush()` before saving the next, as `POST /api/chat` does; every commit is a group
  commit shared by whoever waited for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.nullstore import NullStore
from bench.pgcluster import Postgres, cluster_cpu
from chatbot.config import Settings
from chatbot.model import Message
from chatbot.store.base import Store
from chatbot.store.postgres import PostgresStore
from chatbot.store.sqlite import SqliteStore
from chatbot.store.writer import Write

USER_TEXT = "What is the balance of my wallet on sepolia, and what did I send last week?"
AGENT_TEXT = " ".join(["Your balance is 0.42 ETH; last week you sent two transactions."] * 10)
SESSIONS = 1000
DISTINCT_MESSAGES = 1000  # ids vary as a session's would; building one per save would be timed
SAVE_INTERVAL = Settings.model_fields["stream_save_interval_seconds"].default
STREAMING_REPLY = "1764672000000000 " * 180  # 3 KB: the served scenario's reply at mid-life
PACE_TICK = 0.01  # saves arrive all along, as in the server: a commit every ~50 ms


class _CountsCommits:
    """Counts the batches the store's writer commits (a commit is one transaction)."""

    commits = 0

    async def _commit(self, writes: list[Write]) -> None:
        self.commits += 1
        await super()._commit(writes)  # type: ignore[misc]


class CountedSqlite(_CountsCommits, SqliteStore):
    """SQLite, counting its commits."""


class CountedPostgres(_CountsCommits, PostgresStore):
    """Postgres, counting its commits."""


@functools.cache
def _messages() -> list[Message]:
    """Alternately a user's question and an agent's reply (~70 and ~630 characters)."""
    return [
        Message(sender="agent", content=AGENT_TEXT)
        if i % 2
        else Message(sender="user", content=USER_TEXT)
        for i in range(DISTINCT_MESSAGES)
    ]


@functools.cache
def _replies(sessions: int) -> list[Message]:
    """One streaming reply per session."""
    return [
        Message(sender="agent", content=STREAMING_REPLY, is_streaming=True) for _ in range(sessions)
    ]


async def _served_rate(store: Store, ids: list[str], deadline: float) -> int:
    """Each session's streaming reply re-saved every SAVE_INTERVAL, spread evenly; saves."""
    replies = _replies(len(ids))
    loop = asyncio.get_running_loop()
    per_tick = len(ids) * PACE_TICK / SAVE_INTERVAL
    saves, due, tick = 0, 0.0, loop.time()
    while loop.time() < deadline:
        due += per_tick
        while saves < due:
            index = saves % len(ids)
            store.save_message(ids[index], 1, replies[index])  # the same row, as it grows
            saves += 1
        tick += PACE_TICK
        await asyncio.sleep(max(0.0, tick - loop.time()))
    return saves


async def _batched(store: Store, ids: list[str], deadline: float) -> int:
    """Rounds of one message per session, each round flushed before the next; saves."""
    messages = _messages()
    loop = asyncio.get_running_loop()
    position = 0
    while loop.time() < deadline:
        for i, session_id in enumerate(ids):
            store.save_message(session_id, position, messages[(position + i) % len(messages)])
        position += 1
        await store.flush()
    return position * len(ids)


async def _flush_each(store: Store, ids: list[str], deadline: float) -> int:
    """One user per session: save a message, wait until it is committed, again; saves."""
    messages = _messages()
    loop = asyncio.get_running_loop()

    async def user(index: int, session_id: str) -> int:
        position = 0
        while loop.time() < deadline:
            store.save_message(session_id, position, messages[(position + index) % len(messages)])
            position += 1
            await store.flush()
        return position

    return sum(await asyncio.gather(*(user(i, sid) for i, sid in enumerate(ids))))


MODES: dict[str, Callable[[Store, list[str], float], Awaitable[int]]] = {
    "served_rate": _served_rate,
    "batched": _batched,
    "flush_each": _flush_each,
}


def _ids(sessions: int) -> list[str]:
    return [f"bench-{i:06d}" for i in range(sessions)]


async def pacing_cpu(sessions: int, seconds: float) -> float:
    """The served-rate driver's own CPU (its timer ticks), with the null store: a share of
    a core that `saturate` subtracts, so the figure is the store's alone."""
    _replies(sessions)
    loop = asyncio.get_running_loop()
    start, process0 = loop.time(), time.process_time()
    await _served_rate(NullStore(), _ids(sessions), start + seconds)
    return (time.process_time() - process0) / (loop.time() - start)


async def saturate(
    store: CountedSqlite | CountedPostgres,
    count_messages: Callable[[], Awaitable[int]],
    mode: str,
    seconds: float,
    pg: Postgres | None,
    sessions: int = SESSIONS,
    driver_cpu: float = 0.0,
) -> dict[str, Any]:
    """Open `store`, save for `seconds` the way `mode` says, close it; what was committed.

    `driver_cpu` (a share of a core, see `pacing_cpu`) is taken off this process's CPU.
    """
    _messages(), _replies(sessions)  # built before the clock starts
    await store.open()
    try:
        ids = _ids(sessions)
        now = "2026-01-01T00:00:00.000Z"
        for session_id in ids:
            store.save_session(
                session_id, network="sepolia", title=None, created_at=now, last_active_at=now
            )
        await store.flush()
        commits0 = store.commits
        loop = asyncio.get_running_loop()
        start, thread0, process0 = loop.time(), time.thread_time(), time.process_time()
        pg0 = cluster_cpu(pg) if pg else 0.0
        saves = await MODES[mode](store, ids, start + seconds)
        await store.flush()
        elapsed = loop.time() - start
        # The loop runs on this thread; SQLite's statements run on aiosqlite's.
        loop_cpu = time.thread_time() - thread0 - driver_cpu * elapsed
        process_cpu = time.process_time() - process0 - driver_cpu * elapsed
        pg_cpu = cluster_cpu(pg) - pg0 if pg else 0.0
        commits = store.commits - commits0
    finally:
        await store.close()
    messages = await count_messages()  # rows: a re-saved reply is one
    per_save = 1e6 / max(saves, 1)
    return {
        "mode": mode,
        "sessions": sessions,
        "seconds": elapsed,
        "saves": saves,
        "messages": messages,
        "saves_per_s": saves / elapsed,
        "messages_per_s": messages / elapsed,
        "commits": commits,
        "commits_per_s": commits / elapsed,
        "saves_per_commit": saves / max(commits, 1),
        "driver_cpu": driver_cpu,
        "cpu": process_cpu / elapsed,
        "loop_us_per_save": loop_cpu * per_save,
        "process_us_per_save": process_cpu * per_save,
        "postgres_cpu": pg_cpu / elapsed if pg else None,
        "postgres_us_per_save": pg_cpu * per_save if pg else None,
    }


async def saturate_sqlite(
    mode: str, seconds: float, sessions: int = SESSIONS, driver_cpu: float = 0.0
) -> dict[str, Any]:
    """`saturate` on a fresh SQLite file."""
    with tempfile.TemporaryDirectory(prefix="chatbot-bench-") as folder:
        path = Path(folder) / "store.db"

        async def count() -> int:
            return await asyncio.to_thread(count_sqlite_messages, path)

        store = CountedSqlite(path)
        return await saturate(store, count, mode, seconds, None, sessions, driver_cpu)


async def saturate_postgres(
    pg: Postgres,
    url: str,
    mode: str,
    seconds: float,
    sessions: int = SESSIONS,
    driver_cpu: float = 0.0,
) -> dict[str, Any]:
    """`saturate` on a fresh Postgres database at `url`, in the cluster `pg`."""

    async def count() -> int:
        return await count_postgres_messages(url)

    return await saturate(CountedPostgres(url), count, mode, seconds, pg, sessions, driver_cpu)


def count_sqlite_messages(path: Path) -> int:
    """Messages stored in the SQLite file."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


async def count_postgres_messages(url: str) -> int:
    """Messages stored in the Postgres database."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        cursor = await connection.execute("SELECT count(*) FROM messages")
        row = await cursor.fetchone()
    return int(row[0]) if row else 0
