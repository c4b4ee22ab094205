"""Postgres, the store for several machines: psycopg 3 with its connection pool.

The same contract as SQLite, on the same tables and the same row codecs
(store/records.py); the same batch writer (store/writer.py) commits the queued writes,
one transaction per batch, each statement run for many rows at once (psycopg pipelines
`executemany`). A connection that fails (Postgres restarting, the network gone) makes
the writer keep its writes and retry; reads answer `StoreUnavailable` meanwhile.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from chatbot.model import REMEMBERED_RESOLUTIONS, Message, WalletStatus, WalletTx
from chatbot.store.base import MessagePage, StoredSession, StoreError, StoreUnavailable
from chatbot.store.migrations import Migration, pending_migrations
from chatbot.store.records import (
    MESSAGE_COLUMNS,
    WALLET_TX_COLUMNS,
    cutoff_text,
    message_from_row,
    message_row,
    session_row,
    unreadable,
    wallet_tx_from_row,
    wallet_tx_row,
)
from chatbot.store.writer import BatchWriter, Write

logger = logging.getLogger("chatbot.store")

CONNECT_TIMEOUT_SECONDS: Final = 10
"""How long opening the store waits for Postgres to answer."""
ACQUIRE_TIMEOUT_SECONDS: Final = 2.0
"""How long a read or a batch waits for a connection before the database counts as away."""
POOL_MAX_SIZE: Final = 4
MIGRATION_LOCK: Final = 0x63686174626F74
"""The advisory lock key ("chatbot") that lets one of several starting workers migrate."""

# The schema, as migrations (store/migrations.py); `chatbot_schema.version` counts those
# applied. Times are text in the app's one form, as in SQLite, so both compare alike.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    (
        """
        CREATE TABLE sessions (
            id             text PRIMARY KEY,
            network        text NOT NULL,
            title          text,
            created_at     text NOT NULL,
            last_active_at text NOT NULL
        )
        """,
        "CREATE INDEX sessions_by_last_active ON sessions (last_active_at)",
        """
        CREATE TABLE messages (
            session_id   text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            position     bigint NOT NULL,
            id           text NOT NULL,
            sender       text NOT NULL,
            content      text NOT NULL,
            timestamp    text NOT NULL,
            is_streaming boolean NOT NULL,
            status       text NOT NULL,
            tool         text,
            PRIMARY KEY (session_id, position)
        )
        """,
        "CREATE INDEX messages_by_id ON messages (session_id, id)",
        """
        CREATE TABLE wallet_txs (
            session_id  text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            id          text NOT NULL,
            "to"        text NOT NULL,
            value       text NOT NULL,
            data        text NOT NULL,
            chain_id    bigint NOT NULL,
            network     text NOT NULL,
            description text NOT NULL,
            created_at  text NOT NULL,
            expires_at  text NOT NULL,
            status      text,
            resolved_at text,
            seq         bigint GENERATED ALWAYS AS IDENTITY,
            PRIMARY KEY (session_id, id)
        )
        """,
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

# Upserts. As in SQLite, rows of a session land only while the session is stored, so a
# late save for a deleted session neither resurrects it nor fails the batch.
_UPSERT_SESSION: Final = """
INSERT INTO sessions (id, network, title, created_at, last_active_at) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET
    network = excluded.network,
    title = excluded.title,
    last_active_at = excluded.last_active_at
"""
_UPSERT_MESSAGE: Final = """
INSERT INTO messages
    (session_id, position, id, sender, content, timestamp, is_streaming, status, tool)
SELECT v.* FROM (VALUES (%s, %s::bigint, %s, %s, %s, %s, %s::boolean, %s, %s))
    AS v (session_id, position, id, sender, content, timestamp, is_streaming, status, tool)
WHERE EXISTS (SELECT 1 FROM sessions WHERE sessions.id = v.session_id)
ON CONFLICT (session_id, position) DO UPDATE SET
    id = excluded.id,
    sender = excluded.sender,
    content = excluded.content,
    timestamp = excluded.timestamp,
    is_streaming = excluded.is_streaming,
    status = excluded.status,
    tool = excluded.tool
"""
_UPSERT_WALLET_TX: Final = """
INSERT INTO wallet_txs (session_id, id, "to", value, data, chain_id, network, description,
                        created_at, expires_at, status, resolved_at)
SELECT v.* FROM (VALUES (%s, %s, %s, %s, %s, %s::bigint, %s, %s, %s, %s, %s, %s))
    AS v (session_id, id, "to", value, data, chain_id, network, description,
          created_at, expires_at, status, resolved_at)
WHERE EXISTS (SELECT 1 FROM sessions WHERE sessions.id = v.session_id)
ON CONFLICT (session_id, id) DO UPDATE SET
    "to" = excluded."to",
    value = excluded.value,
    data = excluded.data,
    chain_id = excluded.chain_id,
    network = excluded.network,
    description = excluded.description,
    created_at = excluded.created_at,
    expires_at = excluded.expires_at,
    status = excluded.status,
    resolved_at = CASE WHEN excluded.status IS NULL THEN NULL
                       ELSE coalesce(wallet_txs.resolved_at, excluded.resolved_at) END
"""

_SELECT_SESSION: Final = (
    "SELECT network, title, created_at, last_active_at FROM sessions WHERE id = %s"
)
_SELECT_MESSAGES_BEFORE: Final = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE session_id = %s AND position < %s ORDER BY position DESC LIMIT %s
"""
_COUNT_MESSAGES_BEFORE: Final = (
    "SELECT count(*) FROM messages WHERE session_id = %s AND position < %s"
)
_SELECT_POSITION_OF: Final = "SELECT min(position) FROM messages WHERE session_id = %s AND id = %s"
_SELECT_PENDING_TX: Final = f"""
SELECT {WALLET_TX_COLUMNS}
FROM wallet_txs WHERE session_id = %s AND status IS NULL
ORDER BY created_at DESC, seq DESC LIMIT 1
"""
_SELECT_RESOLVED_TXS: Final = """
SELECT id, status FROM wallet_txs WHERE session_id = %s AND status IS NOT NULL
ORDER BY resolved_at DESC, seq DESC LIMIT %s
"""
_SELECT_IDS_AFTER: Final = "SELECT id FROM sessions WHERE id > %s ORDER BY id LIMIT %s"
_SELECT_ALL_TXS: Final = f"""
SELECT {WALLET_TX_COLUMNS}, status FROM wallet_txs WHERE session_id = %s
ORDER BY resolved_at IS NULL, resolved_at, seq
"""
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE id = %s"
_DELETE_INACTIVE: Final = "DELETE FROM sessions WHERE last_active_at < %s"

_AFTER_ALL: Final = 2**63 - 1
"""A position bound above every stored position (bigint)."""


class PostgresStore:
    """The `Store` on a Postgres database."""

    def __init__(self, url: str, *, batch_interval: float = 0.05) -> None:
        self.url = url
        self.where = describe(url)
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._writer = BatchWriter(self._commit, where=self.where, batch_interval=batch_interval)

    @classmethod
    def from_url(cls, url: str, *, batch_interval: float = 0.05) -> PostgresStore:
        """A store for `postgresql://user:password@host:port/database` (libpq's URL form)."""
        describe(url)  # refuses a malformed URL now, not at the first connection
        return cls(url, batch_interval=batch_interval)

    # ---- opening and closing -----------------------------------------------------------

    async def open(self) -> None:
        """Connect and migrate; an unreachable or wrong database is a `StoreError` naming it."""
        if self._pool is not None:
            raise StoreError(f"The store at {self.where} is already open.")
        # One plain connection first: its error says why (refused, wrong password, no such
        # database), where a pool would only time out.
        try:
            async with await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True
            ) as connection:
                await self._migrate(connection)
        except psycopg.Error as exc:
            raise StoreError(
                f"Cannot use the Postgres database {self.where}: {_reason(exc)}"
            ) from exc
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=POOL_MAX_SIZE,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
            # A connection that died with the server is found out before it is handed out.
            check=AsyncConnectionPool.check_connection,
            timeout=ACQUIRE_TIMEOUT_SECONDS,
            open=False,
            name="chatbot-store",
        )
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        self._pool = pool
        self._writer.start()

    async def close(self) -> None:
        """Commit everything queued, then disconnect; raises `StoreError` if that commit fails."""
        if self._pool is None:
            return
        try:
            await self._writer.stop()
        finally:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _migrate(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Apply the missing migrations in one transaction, under an advisory lock.

        Workers starting at once queue on the lock; the first migrates, the others then
        find nothing left to do.
        """
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS chatbot_schema (version integer NOT NULL)"
            )
            version = await _fetch_version(connection)
            if version is None:
                await connection.execute("INSERT INTO chatbot_schema (version) VALUES (0)")
                version = 0
            pending = pending_migrations(version, MIGRATIONS, f"The Postgres database {self.where}")
            for number, statements in pending:
                for statement in statements:
                    await connection.execute(statement)
                logger.info("Migrated %s to schema version %d", self.where, number)
            if pending:
                await connection.execute(
                    "UPDATE chatbot_schema SET version = %s", (SCHEMA_VERSION,)
                )

    # ---- queued writes -------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while queued writes wait for the database to come back."""
        return self._writer.available

    @property
    def retry_after(self) -> float:
        """Seconds a client should wait while the database is away."""
        return self._writer.retry_after

    def save_session(
        self,
        session_id: str,
        *,
        network: str,
        title: str | None,
        created_at: str,
        last_active_at: str,
    ) -> None:
        """Queue an upsert of the session row; `created_at` is kept from the first save."""
        self._writer.enqueue(
            _UPSERT_SESSION, session_row(session_id, network, title, created_at, last_active_at)
        )

    def save_message(self, session_id: str, position: int, message: Message) -> None:
        """Queue an upsert of the message as it is now (later changes need another save)."""
        self._writer.enqueue(_UPSERT_MESSAGE, message_row(session_id, position, message))

    def save_wallet_tx(self, session_id: str, tx: WalletTx, status: WalletStatus | None) -> None:
        """Queue an upsert of the transaction; its first resolution time orders `load`'s map."""
        self._writer.enqueue(_UPSERT_WALLET_TX, wallet_tx_row(session_id, tx, status))

    async def flush(self) -> None:
        """Wait until every write queued before this call is committed."""
        await self._writer.flush()

    async def _commit(self, writes: list[Write]) -> None:
        """Run the writes in order, in one transaction; runs of one statement go together."""
        ignored = 0
        async with (
            self._connection() as connection,
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            for sql, run in itertools.groupby(writes, key=lambda write: write[0]):
                rows = [params for _, params in run]
                await cursor.executemany(sql, rows)
                ignored += len(rows) - max(cursor.rowcount, 0)
        if ignored:
            logger.info("Ignored %d writes for sessions that are no longer stored", ignored)

    # ---- reads and deletes ------------------------------------------------------------------

    async def load(self, session_id: str, limit: int) -> StoredSession | None:
        """The session with its newest `limit` messages; queued writes are flushed first."""
        await self.flush()
        async with self._reading() as cursor:
            await cursor.execute(_SELECT_SESSION, (session_id,))
            found = await cursor.fetchone()
            if found is None:
                return None
            network, title, created_at, last_active_at = found
            await cursor.execute(_SELECT_MESSAGES_BEFORE, (session_id, _AFTER_ALL, max(limit, 0)))
            newest = await cursor.fetchall()
            oldest_shown = newest[-1][0] if newest else _AFTER_ALL
            await cursor.execute(_COUNT_MESSAGES_BEFORE, (session_id, oldest_shown))
            counted = await cursor.fetchone()
            await cursor.execute(_SELECT_PENDING_TX, (session_id,))
            pending = await cursor.fetchone()
            await cursor.execute(_SELECT_RESOLVED_TXS, (session_id, REMEMBERED_RESOLUTIONS))
            resolved = await cursor.fetchall()
        with unreadable(session_id):
            return StoredSession(
                id=session_id,
                network=network,
                title=title,
                created_at=created_at,
                last_active_at=last_active_at,
                messages=[message_from_row(row) for row in reversed(newest)],
                older_messages=int(counted[0]) if counted else 0,
                pending_wallet_tx=wallet_tx_from_row(pending) if pending else None,
                resolved_wallet_txs={
                    tx_id: WalletStatus(status) for tx_id, status in reversed(resolved)
                },
            )

    async def page(self, session_id: str, before: str | None, limit: int) -> MessagePage | None:
        """Up to `limit` messages before `before` (or the newest), oldest first."""
        await self.flush()
        limit = max(limit, 0)
        async with self._reading() as cursor:
            await cursor.execute(_SELECT_SESSION, (session_id,))
            if await cursor.fetchone() is None:
                return None
            bound = _AFTER_ALL
            if before is not None:
                await cursor.execute(_SELECT_POSITION_OF, (session_id, before))
                found = await cursor.fetchone()
                if found is None or found[0] is None:
                    return None
                bound = int(found[0])
            # One row more than asked says whether older ones exist.
            await cursor.execute(_SELECT_MESSAGES_BEFORE, (session_id, bound, limit + 1))
            rows = await cursor.fetchall()
        with unreadable(session_id):
            messages = [message_from_row(row) for row in reversed(rows[:limit])]
        return MessagePage(messages=messages, has_more=len(rows) > limit)

    async def delete(self, session_id: str) -> bool:
        """Delete the session, its messages and transactions (after queued writes land)."""
        await self.flush()
        return await self._delete(_DELETE_SESSION, session_id) > 0

    async def delete_inactive_since(self, cutoff: datetime) -> int:
        """Delete sessions last active before `cutoff` (a naive datetime counts as UTC)."""
        await self.flush()
        return await self._delete(_DELETE_INACTIVE, cutoff_text(cutoff))

    async def schema_version(self) -> int:
        """The number of migrations applied to the database."""
        async with self._connection() as connection:
            return await _fetch_version(connection) or 0

    async def count_sessions(self) -> int:
        """How many sessions are stored."""
        await self.flush()
        async with self._reading() as cursor:
            await cursor.execute("SELECT count(*) FROM sessions")
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def session_ids(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` stored session ids after `after`, in id order."""
        async with self._reading() as cursor:
            await cursor.execute(_SELECT_IDS_AFTER, (after or "", limit))
            rows = await cursor.fetchall()
        return [str(row[0]) for row in rows]

    async def wallet_txs(self, session_id: str) -> list[tuple[WalletTx, WalletStatus | None]]:
        """Every transaction of the session with its status, resolved first, in order."""
        async with self._reading() as cursor:
            await cursor.execute(_SELECT_ALL_TXS, (session_id,))
            rows = await cursor.fetchall()
        with unreadable(session_id):
            return [
                (wallet_tx_from_row(row[:-1]), None if row[-1] is None else WalletStatus(row[-1]))
                for row in rows
            ]

    async def _delete(self, sql: str, value: str) -> int:
        """One autocommitted DELETE; the foreign keys cascade to messages and transactions."""
        async with self._connection() as connection:
            cursor = await connection.execute(sql, (value,))
            return max(cursor.rowcount, 0)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; the database being away is `StoreUnavailable`."""
        if self._pool is None:
            raise StoreError(f"The store {self.where} is not open.")
        try:
            async with self._pool.connection() as connection:
                yield connection
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"The Postgres database {self.where} is unavailable: {_reason(exc)}"
            ) from exc

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """A read-only snapshot, so the several queries of one load agree."""
        if not self._writer.available:  # known to be away: answer now, not after a timeout
            raise StoreUnavailable(
                f"The Postgres database {self.where} is unavailable.",
                retry_after=self._writer.retry_after,
            )
        async with (
            self._connection() as connection,
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            await cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield cursor


async def _fetch_version(connection: psycopg.AsyncConnection[Any]) -> int | None:
    cursor = await connection.execute("SELECT to_regclass('chatbot_schema') IS NOT NULL")
    exists = await cursor.fetchone()
    if not exists or not exists[0]:
        return None
    cursor = await connection.execute("SELECT version FROM chatbot_schema")
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


def describe(url: str) -> str:
    """`postgresql://host:port/database`: where the store is, without user or password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # libpq's message may quote the URL, password and all: say only what is wrong.
        raise StoreError(
            "DATABASE_URL is not a valid postgresql:// URL "
            "(postgresql://user:password@host:port/database)."
        ) from None
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    database = parts.get("dbname") or parts.get("user") or "(default)"
    return f"'{database}' on {host}:{port}"


def _reason(exc: BaseException) -> str:
    """The first line of a driver error: libpq's messages run to several lines of context."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
