"""The bench's private Postgres: the tests' cluster, a fresh database per run, its CPU.

The cluster is `tests.postgres.run_postgres` (Debian's binaries, a temp dir, a free port,
fsync off), so the bench and the tests start Postgres one way. Its processes are pinned
away from the process being measured, and their CPU is read from /proc.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from tests.postgres import Postgres, run_postgres

__all__ = ["Postgres", "cluster_cpu", "fresh_database", "pin_cluster", "private_cluster"]

_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def private_cluster() -> AsyncIterator[Postgres]:
    """`run_postgres()`, started and stopped on a plain asyncio loop in a thread of its own.

    Under uvloop, `pg_ctl start` never returns: the postmaster it leaves running inherits
    uvloop's stdio socket, so the pipe that `_run` reads to its end never ends. Only
    starting and stopping need that loop; queries (psycopg) run on the caller's.
    """
    started: concurrent.futures.Future[Postgres] = concurrent.futures.Future()
    stop = threading.Event()

    async def hold() -> None:
        async with run_postgres() as pg:
            started.set_result(pg)
            await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            else:
                raise

    thread = threading.Thread(target=run, name="postgres-cluster")
    thread.start()
    try:
        yield await asyncio.wrap_future(started)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)


def _postmaster(pg: Postgres) -> int:
    """The cluster's main process: the first line of postmaster.pid."""
    return int((pg.data_dir / "postmaster.pid").read_text().split()[0])


def _children(parent: int) -> list[int]:
    """Processes whose parent is `parent` (backends, walwriter, checkpointer, …)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(_stat(int(entry.name))[1]) == parent:
                    found.append(int(entry.name))
    return found


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, …]."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def cluster_cpu(pg: Postgres) -> float:
    """CPU seconds the whole cluster has used: the postmaster and every child, gone ones too.

    A backend that exits is reaped by the postmaster, whose `cutime`/`cstime` then hold
    its CPU; so postmaster (own + reaped) plus live children (own + reaped) counts each
    process once, however connections come and go during a window.
    """
    total = 0
    postmaster = _postmaster(pg)
    for pid in [postmaster, *_children(postmaster)]:
        with contextlib.suppress(OSError):  # a backend that just exited is in cutime now
            fields = _stat(pid)
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / _TICKS


def pin_cluster(pg: Postgres, core: int) -> None:
    """Keep the cluster on `core`: its running processes and, by inheritance, new backends."""
    if core >= (os.cpu_count() or 1):
        return
    postmaster = _postmaster(pg)
    for pid in [postmaster, *_children(postmaster)]:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {core})


@contextlib.asynccontextmanager
async def fresh_database(pg: Postgres, name: str) -> AsyncIterator[str]:
    """An empty database of its own for one run (no rows left from the last); its URL."""
    await pg.execute(f"CREATE DATABASE {name}")
    try:
        yield pg.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await pg.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
