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
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from chatbot.store.base import StoreError, StoreUnavailable
from chatbot.store.migrations import Migration, pending_migrations
from chatbot.store.sql import Query, SqlStore, statements
from chatbot.store.writer import BatchWriter, Params, Write

logger = logging.getLogger("chatbot.store")

CONNECT_TIMEOUT_SECONDS: Final = 10
"""How long opening the store waits for Postgres to answer."""
ACQUIRE_TIMEOUT_SECONDS: Final = 5.0
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
    (
        # Sign-in (AUTH): the scope of the principal owning a session, NULL without one.
        "ALTER TABLE sessions ADD COLUMN owner text",
        "CREATE INDEX sessions_by_owner ON sessions (owner, last_active_at, id)",
    ),
    (
        # The wallet the client reported, each proposal's simulation and ERC-20 call (JSON).
        "ALTER TABLE sessions ADD COLUMN wallet text",
        "ALTER TABLE wallet_txs ADD COLUMN simulation text",
        "ALTER TABLE wallet_txs ADD COLUMN token_call text",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

# Named columns for the parameter row: Postgres names a VALUES list's columns only so.
STATEMENTS: Final = statements(
    param="%s",
    insertion_order="seq",
    session_rows="VALUES (%s, %s, %s, %s, %s, %s, %s)",
    message_rows="""
SELECT v.* FROM (VALUES (%s, %s::bigint, %s, %s, %s, %s, %s::boolean, %s, %s))
    AS v (session_id, position, id, sender, content, timestamp, is_streaming, status, tool)
WHERE EXISTS (SELECT 1 FROM sessions WHERE sessions.id = v.session_id)""",
    wallet_tx_rows="""
SELECT v.* FROM (VALUES (%s, %s, %s, %s, %s, %s::bigint, %s, %s, %s, %s, %s, %s, %s, %s))
    AS v (session_id, id, "to", value, data, chain_id, network, description,
          created_at, expires_at, simulation, token_call, status, resolved_at)
WHERE EXISTS (SELECT 1 FROM sessions WHERE sessions.id = v.session_id)""",
)


class PostgresStore(SqlStore):
    """The `Store` on a Postgres database."""

    statements = STATEMENTS

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

    # ---- writes, reads and deletes ---------------------------------------------------------

    async def _commit(self, writes: list[Write]) -> None:
        """A batch in one transaction, one `executemany` per statement."""
        await self._transact([(sql, row) for sql, rows in self._grouped(writes) for row in rows])

    async def _transact(self, writes: list[Write]) -> None:
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
        if ignored > 0:
            logger.info("Ignored %d writes for sessions that are no longer stored", ignored)

    async def schema_version(self) -> int:
        """The number of migrations applied to the database."""
        async with self._connection() as connection:
            return await _fetch_version(connection) or 0

    async def _delete(self, sql: str, params: Params) -> int:
        """One autocommitted DELETE; the foreign keys cascade to messages and transactions."""
        async with self._connection() as connection:
            cursor = await connection.execute(sql, params)
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
    async def _reading(self) -> AsyncIterator[Query]:
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

            async def query(sql: str, params: Params) -> list[tuple[Any, ...]]:
                await cursor.execute(sql, params)
                return await cursor.fetchall()

            yield query


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
