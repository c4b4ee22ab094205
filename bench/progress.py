"""Progress lines: each step says what it does and, when done, how long it took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def step(what: str) -> Iterator[None]:
    """Print `what` now and its duration when the block ends."""
    print(f"==> {what}", flush=True)
    started = time.monotonic()
    yield
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


async def report_progress(work: Awaitable[T], status: Callable[[], str], every: float = 5.0) -> T:
    """Await `work`, printing `status()` every `every` seconds meanwhile."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait([task], timeout=every)
        if done:
            return task.result()
        print(f"    {status()}", flush=True)
