"""A cluster under test: several `chatbot serve` workers on their own ports, one Redis, one
database. Each worker has its own port, so a test chooses which worker gets each request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from tests.server import RunningServer, run_server


@asynccontextmanager
async def run_cluster(
    workers: int, *, redis_url: str, prefix: str, database_url: str, **env: str
) -> AsyncIterator[list[RunningServer]]:
    """Start `workers` servers sharing Redis (under `prefix`) and the database."""
    async with AsyncExitStack() as stack:
        # Started side by side: each takes seconds, mostly waiting for its interpreter.
        servers = await asyncio.gather(
            *(
                stack.enter_async_context(
                    run_server(
                        REDIS_URL=redis_url, REDIS_PREFIX=prefix, DATABASE_URL=database_url, **env
                    )
                )
                for _ in range(workers)
            )
        )
        yield list(servers)
