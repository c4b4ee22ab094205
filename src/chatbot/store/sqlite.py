"""SQLite, the embedded default store: one file in WAL mode, writes batched off the event loop.

All SQL runs on aiosqlite's own thread. The connection is shared, so one asyncio lock
keeps a batch's transaction (store/writer.py) and the rare reads and deletes from
interleaving on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Final

import aiosqlite

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
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

# Upserts. Rows that belong to a session only land while that session is stored, so a
# late save for a session that was just deleted neither resurrects it nor fails the
# whole batch (and with it other users' writes) on the foreign key.
_UPSERT_SESSION: Final = """
INSERT INTO sessions (id, network, title, created_at, last_active_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    network = excluded.network,
    title = excluded.title,
    last_active_at = excluded.last_active_at
"""
_UPSERT_MESSAGE: Final = """
INSERT INTO messages
    (session_id, position, id, sender, content, timestamp, is_streaming, status, tool)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?1)
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
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ?1)
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
    "SELECT network, title, created_at, last_active_at FROM sessions WHERE id = ?"
)
_SELECT_MESSAGES_BEFORE: Final = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE session_id = ? AND position < ? ORDER BY position DESC LIMIT ?
"""
_COUNT_MESSAGES_BEFORE: Final = (
    "SELECT count(*) FROM messages WHERE session_id = ? AND position < ?"
)
_SELECT_POSITION_OF: Final = "SELECT min(position) FROM messages WHERE session_id = ? AND id = ?"
_SELECT_PENDING_TX: Final = f"""
SELECT {WALLET_TX_COLUMNS}
FROM wallet_txs WHERE session_id = ? AND status IS NULL
ORDER BY created_at DESC, rowid DESC LIMIT 1
"""
_SELECT_RESOLVED_TXS: Final = """
SELECT id, status FROM wallet_txs WHERE session_id = ? AND status IS NOT NULL
ORDER BY resolved_at DESC, rowid DESC LIMIT ?
"""
_SELECT_IDS_AFTER: Final = "SELECT id FROM sessions WHERE id > ? ORDER BY id LIMIT ?"
_SELECT_ALL_TXS: Final = f"""
SELECT {WALLET_TX_COLUMNS}, status FROM wallet_txs WHERE session_id = ?
ORDER BY resolved_at IS NULL, resolved_at, rowid
"""
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE id = ?"
_DELETE_INACTIVE: Final = "DELETE FROM sessions WHERE last_active_at < ?"

_AFTER_ALL: Final = 2**63 - 1
"""A position bound above every stored position (SQLite integers are 64-bit)."""

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


class SqliteStore:
    """The `Store` on one SQLite file (or `:memory:`, for tests and throwaway runs)."""

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
            raise StoreError("not a sqlite:/// URL")
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
        db = self._connection()
        ignored = 0
        async with self._lock:
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, run in itertools.groupby(writes, key=lambda write: write[0]):
                        rows = [params for _, params in run]
                        cursor = await db.executemany(sql, rows)
                        ignored += len(rows) - cursor.rowcount
                    await db.execute("COMMIT")
                except BaseException:
                    await _rollback(db)
                    raise
            except sqlite3.Error as exc:
                if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in _TRANSIENT_CODES:
                    raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
                raise
        if ignored:
            logger.info("Ignored %d writes for sessions that are no longer stored", ignored)

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"The store {self.where} is not open.")
        return self._db

    # ---- reads and deletes ------------------------------------------------------------------

    async def load(self, session_id: str, limit: int) -> StoredSession | None:
        """The session with its newest `limit` messages; queued writes are flushed first."""
        await self.flush()
        async with self._reading() as db:
            rows = list(await db.execute_fetchall(_SELECT_SESSION, (session_id,)))
            if not rows:
                return None
            network, title, created_at, last_active_at = rows[0]
            newest = list(
                await db.execute_fetchall(
                    _SELECT_MESSAGES_BEFORE, (session_id, _AFTER_ALL, max(limit, 0))
                )
            )
            oldest_shown = newest[-1][0] if newest else _AFTER_ALL
            counted = list(
                await db.execute_fetchall(_COUNT_MESSAGES_BEFORE, (session_id, oldest_shown))
            )
            pending = list(await db.execute_fetchall(_SELECT_PENDING_TX, (session_id,)))
            resolved = list(
                await db.execute_fetchall(
                    _SELECT_RESOLVED_TXS, (session_id, REMEMBERED_RESOLUTIONS)
                )
            )
        with unreadable(session_id):
            return StoredSession(
                id=session_id,
                network=network,
                title=title,
                created_at=created_at,
                last_active_at=last_active_at,
                messages=[message_from_row(row) for row in reversed(newest)],
                older_messages=int(counted[0][0]),
                pending_wallet_tx=wallet_tx_from_row(pending[0]) if pending else None,
                resolved_wallet_txs={
                    tx_id: WalletStatus(status) for tx_id, status in reversed(resolved)
                },
            )

    async def page(self, session_id: str, before: str | None, limit: int) -> MessagePage | None:
        """Up to `limit` messages before `before` (or the newest), oldest first."""
        await self.flush()
        limit = max(limit, 0)
        async with self._reading() as db:
            if not list(await db.execute_fetchall(_SELECT_SESSION, (session_id,))):
                return None
            bound = _AFTER_ALL
            if before is not None:
                found = list(await db.execute_fetchall(_SELECT_POSITION_OF, (session_id, before)))
                if found[0][0] is None:
                    return None
                bound = int(found[0][0])
            # One row more than asked says whether older ones exist.
            rows = list(
                await db.execute_fetchall(_SELECT_MESSAGES_BEFORE, (session_id, bound, limit + 1))
            )
        with unreadable(session_id):
            messages = [message_from_row(row) for row in reversed(rows[:limit])]
        return MessagePage(messages=messages, has_more=len(rows) > limit)

    async def delete(self, session_id: str) -> bool:
        """Delete the session, its messages and transactions (after queued writes land)."""
        await self.flush()
        return await self._delete(_DELETE_SESSION, (session_id,)) > 0

    async def delete_inactive_since(self, cutoff: datetime) -> int:
        """Delete sessions last active before `cutoff` (a naive datetime counts as UTC)."""
        await self.flush()
        return await self._delete(_DELETE_INACTIVE, (cutoff_text(cutoff),))

    async def schema_version(self) -> int:
        """The number of migrations applied to the database."""
        async with self._reading() as db:
            rows = list(await db.execute_fetchall("PRAGMA user_version"))
        return int(rows[0][0])

    async def count_sessions(self) -> int:
        """How many sessions are stored."""
        await self.flush()
        async with self._reading() as db:
            rows = list(await db.execute_fetchall("SELECT count(*) FROM sessions"))
        return int(rows[0][0])

    async def session_ids(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` stored session ids after `after`, in id order."""
        async with self._reading() as db:
            rows = await db.execute_fetchall(_SELECT_IDS_AFTER, (after or "", limit))
        return [str(row[0]) for row in rows]

    async def wallet_txs(self, session_id: str) -> list[tuple[WalletTx, WalletStatus | None]]:
        """Every transaction of the session with its status, resolved first, in order."""
        async with self._reading() as db:
            rows = await db.execute_fetchall(_SELECT_ALL_TXS, (session_id,))
        with unreadable(session_id):
            return [
                (wallet_tx_from_row(row[:-1]), None if row[-1] is None else WalletStatus(row[-1]))
                for row in rows
            ]

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
    async def _reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """A read transaction, so the several queries of one load see one snapshot."""
        db = self._connection()
        async with self._lock:
            try:
                await db.execute("BEGIN")
                yield db
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


async def _rollback(db: aiosqlite.Connection) -> None:
    """Roll back if a transaction is open (SQLite rolls some failures back by itself)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await db.execute("ROLLBACK")


async def _close_quietly(db: aiosqlite.Connection) -> None:
    """Close after a failed open: the original error is the one worth raising."""
    with contextlib.suppress(Exception):
        await db.close()
