"""SQLite, the embedded default store: one file in WAL mode, writes batched off the event loop.

All SQL runs on aiosqlite's own thread. The connection is shared, so one asyncio lock
keeps a batch's transaction (store/writer.py) and the rare reads and deletes from
interleaving on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiosqlite
import orjson

from chatbot.store.base import StoreError, StoreUnavailable
from chatbot.store.migrations import Migration, pending_migrations
from chatbot.store.sql import Query, SqlStore, statements
from chatbot.store.writer import BatchWriter, Params, Write

logger = logging.getLogger("chatbot.store")

MEMORY: Final = ":memory:"
URL_PREFIX: Final = "sqlite:///"
BUSY_TIMEOUT_MS: Final = 5000
"""How long a statement waits for another process's lock before it fails."""

# The schema, as migrations (store/migrations.py); `PRAGMA user_version` counts those applied.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    (
        """
        CREATE TABLE sessions (
            id             TEXT NOT NULL PRIMARY KEY,
            network        TEXT NOT NULL,
            title          TEXT,
            created_at     TEXT NOT NULL,
            last_active_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX sessions_by_last_active ON sessions (last_active_at)",
        """
        CREATE TABLE messages (
            session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            position     INTEGER NOT NULL,
            id           TEXT NOT NULL,
            sender       TEXT NOT NULL,
            content      TEXT NOT NULL,
            timestamp    TEXT NOT NULL,
            is_streaming INTEGER NOT NULL,
            status       TEXT NOT NULL,
            tool         TEXT,
            PRIMARY KEY (session_id, position)
        )
        """,
        "CREATE INDEX messages_by_id ON messages (session_id, id)",
        """
        CREATE TABLE wallet_txs (
            session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            id          TEXT NOT NULL,
            "to"        TEXT NOT NULL,
            value       TEXT NOT NULL,
            data        TEXT NOT NULL,
            chain_id    INTEGER NOT NULL,
            network     TEXT NOT NULL,
            description TEXT NOT NULL,
            created_at  TEXT NOT NULL,
            expires_at  TEXT NOT NULL,
            status      TEXT,
            resolved_at TEXT,
            PRIMARY KEY (session_id, id)
        )
        """,
    ),
    (
        # Sign-in (AUTH): the scope of the principal owning a session, NULL without one.
        "ALTER TABLE sessions ADD COLUMN owner TEXT",
        "CREATE INDEX sessions_by_owner ON sessions (owner, last_active_at, id)",
    ),
    (
        # The wallet the client reported, each proposal's simulation and ERC-20 call (JSON).
        "ALTER TABLE sessions ADD COLUMN wallet TEXT",
        "ALTER TABLE wallet_txs ADD COLUMN simulation TEXT",
        "ALTER TABLE wallet_txs ADD COLUMN token_call TEXT",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


_BATCH: Final = "json_each(?1)"
"""Where a batch's rows go into a statement (as a string literal, see `_commit`)."""


def _literal(text: str) -> str:
    """`text` as an SQL string literal: quoted, its quotes doubled (SQLite has no escapes)."""
    return "'" + text.replace("'", "''") + "'"


def _batch_rows(columns: int, *, session_stored: bool) -> str:
    """A batch's rows from one JSON array of row arrays.

    Why not `executemany`: the sqlite3 module lets go of the GIL around every row's step
    and must take it back after, and while the event loop keeps the GIL busy each take
    waits (measured: ~1.5 ms a row at 1,000 x 20 tokens/s). One statement over
    `json_each` is one step for the whole batch. (`WHERE true` keeps ON CONFLICT from
    parsing as part of a join.)
    """
    values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(columns))
    where = (
        "EXISTS (SELECT 1 FROM sessions WHERE id = json_extract(value, '$[0]'))"
        if session_stored
        else "true"
    )
    return f"SELECT {values} FROM {_BATCH} WHERE {where}"


STATEMENTS: Final = statements(
    param="?",
    insertion_order="rowid",
    session_rows=_batch_rows(7, session_stored=False),
    message_rows=_batch_rows(9, session_stored=True),
    wallet_tx_rows=_batch_rows(14, session_stored=True),
)

# SQLite's primary result codes for a database that is away for now, not refusing a write.
_TRANSIENT_CODES: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)


class SqliteStore(SqlStore):
    """The `Store` on one SQLite file (or `:memory:`, for tests and throwaway runs)."""

    statements = STATEMENTS

    def __init__(self, path: Path, *, batch_interval: float = 0.05) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self.where = MEMORY if self._in_memory else str(path.absolute())
        self._writer = BatchWriter(self._commit, where=self.where, batch_interval=batch_interval)

    @classmethod
    def from_url(cls, url: str, *, batch_interval: float = 0.05) -> SqliteStore:
        """A store for `sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite:///:memory:`."""
        if not url.startswith(URL_PREFIX):
            raise StoreError("A SQLite DATABASE_URL starts with sqlite:///.")
        location = url[len(URL_PREFIX) :]
        if not location or location.endswith("/"):
            raise StoreError("DATABASE_URL names no database file after sqlite:///.")
        if "?" in location or "#" in location:
            raise StoreError("DATABASE_URL: query strings and fragments are not supported.")
        return cls(Path(location), batch_interval=batch_interval)

    # ---- opening and closing -----------------------------------------------------------

    @property
    def _in_memory(self) -> bool:
        return str(self.path) == MEMORY

    async def open(self) -> None:
        """Connect, configure and migrate; any problem is a `StoreError` naming the file."""
        if self._db is not None:
            raise StoreError(f"The store at {self.where} is already open.")
        self._make_directory()
        try:
            db = await aiosqlite.connect(str(self.path), isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:
            await _configure(db, wal=not self._in_memory)
            await self._migrate(db)
        except sqlite3.Error as exc:
            await _close_quietly(db)
            raise self._unusable(exc) from exc
        except BaseException:
            await _close_quietly(db)
            raise
        self._db = db
        self._writer.start()

    async def close(self) -> None:
        """Commit everything queued, then disconnect; raises `StoreError` if that commit fails."""
        if self._db is None:
            return
        try:
            await self._writer.stop()
        finally:
            db, self._db = self._db, None
            await db.close()

    def _make_directory(self) -> None:
        if self._in_memory:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the directory for the SQLite database {self.where}: "
                f"{exc.strerror or exc}"
            ) from exc

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        """Apply the missing migrations in one transaction that always writes.

        `PRAGMA user_version` counts the migrations applied. Rewriting it even when
        nothing is missing is deliberate: SQLite opens an unwritable file read-only without
        complaint and only fails at the first write, so this is what turns a read-only
        database into an error at start, not at the first user message.
        """
        await db.execute("BEGIN IMMEDIATE")  # the lock: one process migrates at a time
        try:
            rows = list(await db.execute_fetchall("PRAGMA user_version"))
            for number, statements in pending_migrations(
                int(rows[0][0]), MIGRATIONS, f"The SQLite database {self.where}"
            ):
                for statement in statements:
                    await db.execute(statement)
                logger.info("Migrated %s to schema version %d", self.where, number)
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await db.execute("COMMIT")
        except BaseException:
            await _rollback(db)
            raise

    def _unusable(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"Cannot use the SQLite database {self.where}: {exc}{self._hint()}")

    def _hint(self) -> str:
        """Why the file may be unusable, in the operator's terms."""
        if self._in_memory:
            return ""
        if self.path.exists() and not os.access(self.path, os.W_OK):
            return " (the file is read-only for this process)"
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            return (
                " (its directory is read-only for this process; SQLite needs to create "
                "the -wal and -shm files beside the database)"
            )
        return ""

    # ---- writes, reads and deletes ---------------------------------------------------------

    async def _commit(self, writes: list[Write]) -> None:
        """A batch in one transaction, one statement per kind of row, in one call.

        Each call to aiosqlite is a hop to its thread and back through the event loop;
        with the loop busy (1,000 replies streaming) a hop took 20-90 ms, and BEGIN,
        three upserts and COMMIT as five hops held a `POST /api/chat` waiting on its
        flush for up to ~600 ms. `executescript` is one hop; it takes no parameters, so
        each batch goes in as a quoted SQL string literal of its JSON.
        """
        script = [
            sql.replace(_BATCH, f"json_each({_literal(orjson.dumps(rows).decode())})")
            for sql, rows in self._grouped(writes)
        ]
        db = self._connection()
        async with self._lock, _transient_errors():
            before = db.total_changes
            try:
                await db.executescript(";\n".join(["BEGIN IMMEDIATE", *script, "COMMIT"]))
            except BaseException:
                await _rollback(db)
                raise
            ignored = len(writes) - (db.total_changes - before)
        if ignored > 0:
            logger.info("Ignored %d writes for sessions that are no longer stored", ignored)

    async def _transact(self, writes: list[Write]) -> None:
        """Run the writes in order, in one transaction (a hop per statement: rare work)."""
        db = self._connection()
        async with self._lock, _transient_errors():
            await db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in writes:
                    await db.execute(sql, params)
                await db.execute("COMMIT")
            except BaseException:
                await _rollback(db)
                raise

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"The store {self.where} is not open.")
        return self._db

    async def schema_version(self) -> int:
        """The number of migrations applied to the database."""
        async with self._reading() as query:
            rows = await query("PRAGMA user_version", ())
        return int(rows[0][0])

    async def _delete(self, sql: str, params: Params) -> int:
        """One autocommitted DELETE; the foreign keys cascade to messages and transactions."""
        db = self._connection()
        async with self._lock:
            try:
                cursor = await db.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreError(f"Could not delete from {self.where}: {exc}") from exc
            return cursor.rowcount

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[Query]:
        """A read transaction, so the several queries of one load see one snapshot."""
        db = self._connection()

        async def query(sql: str, params: Params) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in await db.execute_fetchall(sql, params)]

        async with self._lock:
            try:
                await db.execute("BEGIN")
                yield query
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                await _rollback(db)
                raise StoreError(f"Could not read from {self.where}: {exc}") from exc
            except BaseException:
                await _rollback(db)
                raise


async def _configure(db: aiosqlite.Connection, *, wal: bool) -> None:
    """Connection settings: WAL for concurrent readers, NORMAL sync (safe in WAL), cascades."""
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
    if wal and str(mode[0][0]).lower() != "wal":
        logger.warning("SQLite kept journal mode %s instead of WAL", mode[0][0])
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute("PRAGMA foreign_keys = ON")


@contextlib.asynccontextmanager
async def _transient_errors() -> AsyncIterator[None]:
    """SQLite's errors for a database away for now (busy, locked, I/O) as `StoreUnavailable`."""
    try:
        yield
    except sqlite3.Error as exc:
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in _TRANSIENT_CODES:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise


async def _rollback(db: aiosqlite.Connection) -> None:
    """Roll back if a transaction is open (SQLite rolls some failures back by itself)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await db.execute("ROLLBACK")


async def _close_quietly(db: aiosqlite.Connection) -> None:
    """Close after a failed open: the original error is the one worth raising."""
    with contextlib.suppress(Exception):
        await db.close()
