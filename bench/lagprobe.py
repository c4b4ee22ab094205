"""`python -m bench.lagprobe serve …`: our server with a 1 ms ticker timing its event loop.

A measuring instrument, not a product feature (a thousand wake-ups a second cost a few
per cent of a core, so the fan-out sweep runs without it and one extra point with it).
The ticker sleeps 1 ms again and again; whenever it wakes more than `RECORDED_MS` late,
the loop was busy that long with something else, and the pause is kept with its wall
time. Every garbage collection is timed too (`gc.callbacks`), so a pause can be told
apart from the collector's. At shutdown both go to the JSON file LAG_PROBE_OUT names, as
`{"pauses": [[unix_time, pause_ms], …], "collections": [[unix_time, generation, ms], …]}`,
for the scenario to cut to its window.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI

TICK_S = 0.001
RECORDED_MS = 2.0
"""Pauses shorter than this are the ordinary cost of a busy loop's steps: not kept."""


async def _tick(pauses: list[tuple[float, float]]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(TICK_S)
        late_ms = (loop.time() - before - TICK_S) * 1000
        if late_ms > RECORDED_MS:
            pauses.append((time.time(), late_ms))


class _Collections:
    """Times every garbage collection, with its generation."""

    def __init__(self) -> None:
        self.timed: list[tuple[float, int, float]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            ms = (time.perf_counter() - self._started) * 1000
            self.timed.append((time.time(), info["generation"], ms))


def probed(create_app: Callable[..., FastAPI]) -> Callable[..., FastAPI]:
    """`create_app`, with the ticker running for the app's whole life."""

    def create(*args: Any, **kwargs: Any) -> FastAPI:
        app = create_app(*args, **kwargs)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(served: FastAPI) -> AsyncIterator[Any]:
            pauses: list[tuple[float, float]] = []
            collections = _Collections()
            gc.callbacks.append(collections)
            ticker = asyncio.create_task(_tick(pauses))
            try:
                async with inner(served) as state:
                    yield state
            finally:
                ticker.cancel()
                gc.callbacks.remove(collections)
                out = Path(os.environ["LAG_PROBE_OUT"])
                found = {"pauses": pauses, "collections": collections.timed}
                await asyncio.to_thread(out.write_bytes, orjson.dumps(found))

        app.router.lifespan_context = lifespan
        return app

    return create


def main() -> int:
    """Patch where the CLI builds the app, then run `chatbot` with our arguments."""
    import chatbot.cli

    chatbot.cli.create_app = probed(chatbot.cli.create_app)  # type: ignore[attr-defined]
    return chatbot.cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
