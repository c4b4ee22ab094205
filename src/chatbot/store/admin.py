"""What operators do to a database: migrate it, look at it, copy it to another one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from chatbot.store import Store, store_from_url

COPY_FLUSH_EVERY = 100
"""Sessions copied per commit wait: bounds the memory a copy holds, keeps batches large."""
COPY_PAGE = 500


@dataclass(frozen=True, slots=True)
class DatabaseReport:
    """What `chatbot db check` prints."""

    where: str
    schema_version: int
    sessions: int


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    """The store at `url`, open (and so migrated) for the duration."""
    store = store_from_url(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def upgrade(url: str) -> int:
    """Apply the missing migrations; the schema version the database is at now."""
    async with opened(url) as store:
        return await store.schema_version()


async def check(url: str) -> DatabaseReport:
    """Connect (migrating if needed) and report the schema version and the session count."""
    async with opened(url) as store:
        return DatabaseReport(
            where=store.where,
            schema_version=await store.schema_version(),
            sessions=await store.count_sessions(),
        )


async def copy(source_url: str, target_url: str, progress: Callable[[int], None]) -> int:
    """Copy every session (messages, network, title, wallet transactions); how many.

    Rows are upserted by their keys, so an interrupted copy can simply be run again.
    """
    copied = 0
    async with opened(source_url) as source, opened(target_url) as target:
        after: str | None = None
        while ids := await source.session_ids(after, COPY_PAGE):
            for session_id in ids:
                await _copy_session(source, target, session_id)
                copied += 1
                if copied % COPY_FLUSH_EVERY == 0:
                    await target.flush()
                    progress(copied)
            after = ids[-1]
        await target.flush()
    progress(copied)
    return copied


async def _copy_session(source: Store, target: Store, session_id: str) -> None:
    stored = await source.load(session_id, 2**62)
    if stored is None:  # deleted since it was listed
        return
    target.save_session(
        session_id,
        network=stored.network,
        title=stored.title,
        created_at=stored.created_at,
        last_active_at=stored.last_active_at,
        wallet=stored.wallet,
    )
    for position, message in enumerate(stored.messages):
        target.save_message(session_id, position, message)
    for tx, status in await source.wallet_txs(session_id):
        target.save_wallet_tx(session_id, tx, status)
