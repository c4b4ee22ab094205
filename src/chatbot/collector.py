"""Garbage-collector settings for a process that holds many running turns.

A running agent turn kept about 700 GC-tracked objects on pydantic-ai's graph
(coroutines, closures, cells; about 120 on the turn loop that replaced it, which these
settings predate). CPython's automatic full collection rescans all of them
whenever the old generation grows by a quarter; with a thousand turns running, that
paused every stream for 300-450 ms every few seconds (docs/BENCHMARKS.md). So objects that
live as long as the process are frozen out of collection, the young generations are
collected as usual, and the full collection runs on the cleanup timer instead.
"""

from __future__ import annotations

import gc

_NEVER = 2**31 - 1
YOUNG = 20_000
MIDDLE = 5


def tune_for_serving() -> None:
    """Freeze what exists now (modules, the app); no automatic full collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, _NEVER)


def collect_old() -> int:
    """The full collection the automatic one no longer does; returns objects freed."""
    return gc.collect()
