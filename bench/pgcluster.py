"""The bench's view of the tests' Postgres cluster (`tests.postgres`): its CPU, its core.

The bench and the tests start Postgres one way (`run_postgres`, `fresh_database`); here
its processes are pinned away from the process being measured and their CPU is read
from /proc.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tests.postgres import Postgres

__all__ = ["cluster_cpu", "pin_cluster"]

_TICKS = os.sysconf("SC_CLK_TCK")


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
