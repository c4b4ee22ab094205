"""Process-wide periodic jobs (the sweep, the keep-alive walk, lease renewal, failover).

One task per job, each run awaited before the next sleep, so a slow run never overlaps
the next. A job that fails is logged and tried again next time: a timer never dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from inspect import isawaitable

from chatbot.errors import ChatbotError

log = logging.getLogger("chatbot.timers")


def every(
    seconds: float, job: Callable[[], object | Awaitable[object]], name: str
) -> asyncio.Task[None]:
    """Run `job` every `seconds` until the task is cancelled."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = job()
                if isawaitable(result):
                    await result
            except ChatbotError as error:
                # A dependency is away (a 503 to requests); its own watcher says so once.
                log.debug("timer job refused", extra={"job": name, "error": error.code})
            except Exception:
                log.exception("timer job failed", extra={"job": name})

    return asyncio.create_task(loop(), name=f"timer-{name}")
