"""SQLite, the embedded default store: one file in WAL mode, writes batched off the event loop.

Why it is shaped this way:

- `save_*` run on the event loop for every streamed message, so they only append a
  ready-made parameter tuple to a list. The tuple is taken at call time: a `Message`
  that keeps changing afterwards does not change what this save writes.
- One writer task commits whatever has accumulated in ONE transaction, so the cost of a
  commit (an fsync at checkpoints, a WAL append always) is paid per batch, not per save.
  It waits `batch_interval` for more writes to join a batch, unless someone flushes.
- `flush` is a group commit: every caller that waits for the same batch shares its commit.
- All SQL runs on aiosqlite's own thread. The connection is shared, so one asyncio lock
  keeps a batch's transaction and the rare reads and deletes from interleaving on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiosqlite
import orjson

from chatbot.sessions.ids import redact
from chatbot.sessions.messages import (
    Message,
    MessageStatus,
    Sender,
    ToolCallInfo,
    ToolStatus,
    utc_timestamp,
)
from chatbot.sessions.wallet import REMEMBERED_RESOLUTIONS, WalletStatus, WalletTx
from chatbot.store.base import MessagePage, StoredSession, StoreError

logger = logging.getLogger("chatbot.store")

MEMORY: Final = ":memory:"
URL_PREFIX: Final = "sqlite:///"
BUSY_TIMEOUT_MS: Final = 5000
"""How long a statement waits for another process's lock before it fails."""

# Each migration is a list of statements; `PRAGMA user_version` counts those applied.
# Append new ones, never edit old ones: databases in the field have run them already.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
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
_SELECT_MESSAGES_BEFORE: Final = """
SELECT position, id, sender, content, timestamp, is_streaming, status, tool FROM messages
WHERE session_id = ? AND position < ? ORDER BY position DESC LIMIT ?
"""
_COUNT_MESSAGES_BEFORE: Final = (
    "SELECT count(*) FROM messages WHERE session_id = ? AND position < ?"
)
_SELECT_POSITION_OF: Final = "SELECT min(position) FROM messages WHERE session_id = ? AND id = ?"
_SELECT_PENDING_TX: Final = """
SELECT id, "to", value, data, chain_id, network, description, created_at, expires_at
FROM wallet_txs WHERE session_id = ? AND status IS NULL
ORDER BY created_at DESC, rowid DESC LIMIT 1
"""
_SELECT_RESOLVED_TXS: Final = """
SELECT id, status FROM wallet_txs WHERE session_id = ? AND status IS NOT NULL
ORDER BY resolved_at DESC, rowid DESC LIMIT ?
"""
_DELETE_SESSION: Final = "DELETE FROM sessions WHERE id = ?"
_DELETE_INACTIVE: Final = "DELETE FROM sessions WHERE last_active_at < ?"

_AFTER_ALL: Final = 2**63 - 1
"""A position bound above every stored position (SQLite integers are 64-bit)."""

_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_SENDERS: Final[dict[str, Sender]] = {"user": "user", "agent": "agent", "system": "system"}

_Params = tuple[object, ...]
_Write = tuple[str, _Params]
"""A queued statement and its parameters; the first parameter is always the session id."""


class SqliteStore:
    """The `Store` on one SQLite file (or `:memory:`, for tests and throwaway runs)."""

    def __init__(self, path: Path, *, batch_interval: float = 0.05) -> None:
        self.path = path
        self._batch_interval = batch_interval
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._queue: list[_Write] = []
        self._queued_done: asyncio.Future[None] | None = None
        """Resolves when the writes now in `_queue` are committed; made when first needed."""
        self._committing: asyncio.Future[None] | None = None
        """Resolves when the batch the writer is committing right now is on disk."""
        self._wakeup = asyncio.Event()
        """Set when the queue gets its first write (or on close): the writer has work."""
        self._urgent = asyncio.Event()
        """Set by `flush`: commit now instead of waiting for more writes to join."""

    @classmethod
    def from_url(cls, url: str, *, batch_interval: float = 0.05) -> SqliteStore:
        """A store for `sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite:///:memory:`."""
        if not url.startswith(URL_PREFIX):
            scheme = url.partition(":")[0] if ":" in url else "(none)"
            # Only the scheme is echoed: a database URL may carry a password.
            raise StoreError(
                f"Unsupported DATABASE_URL scheme {scheme!r}: use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db or sqlite:///:memory:."
            )
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
            raise StoreError(f"The store at {self._where()} is already open.")
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
        self._closing = False
        self._writer = asyncio.create_task(self._write_batches(), name="sqlite-store-writer")
        self._writer.add_done_callback(self._writer_stopped)

    async def close(self) -> None:
        """Commit everything queued, then disconnect; raises `StoreError` if that commit fails."""
        if self._db is None:
            return
        self._closing = True  # no new writes from here on
        try:
            await self.flush()
        finally:
            writer, self._writer = self._writer, None
            self._wakeup.set()
            if writer is not None:
                await writer
            db, self._db = self._db, None
            await db.close()

    def _make_directory(self) -> None:
        if self._in_memory:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the directory for the SQLite database {self._where()}: "
                f"{exc.strerror or exc}"
            ) from exc

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        """Apply the missing migrations in one transaction that always writes.

        Rewriting `user_version` even when nothing is missing is deliberate: SQLite opens
        an unwritable file read-only without complaint and only fails at the first write,
        so this is what turns a read-only database into an error at start, not at the
        first user message.
        """
        await db.execute("BEGIN IMMEDIATE")
        try:
            rows = list(await db.execute_fetchall("PRAGMA user_version"))
            version = int(rows[0][0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"The SQLite database {self._where()} has schema version {version}, newer "
                    f"than this program knows ({SCHEMA_VERSION}); run a newer version of the "
                    "program, or point DATABASE_URL at another file."
                )
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    await db.execute(statement)
                logger.info("Migrated %s to schema version %d", self._where(), number)
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            await db.execute("COMMIT")
        except BaseException:
            await _rollback(db)
            raise

    def _where(self) -> str:
        return MEMORY if self._in_memory else str(self.path.absolute())

    def _unusable(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"Cannot use the SQLite database {self._where()}: {exc}{self._hint()}")

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

    def save_session(
        self,
        session_id: str,
        *,
        network: str,
        title: str | None,
        created_at: str,
        last_active_at: str,
    ) -> None:
        """Queue an upsert of the session row; `created_at` is kept from the first save.

        Timestamps are stored as `YYYY-MM-DDTHH:MM:SS.mmmZ` (converted if given in another
        ISO-8601 form, ValueError if not ISO-8601), so comparing them as text is correct.
        """
        self._enqueue(
            _UPSERT_SESSION,
            (
                session_id,
                network,
                title,
                _canonical_time(created_at),
                _canonical_time(last_active_at),
            ),
        )

    def save_message(self, session_id: str, position: int, message: Message) -> None:
        """Queue an upsert of the message as it is now (later changes need another save)."""
        tool = message.tool
        self._enqueue(
            _UPSERT_MESSAGE,
            (
                session_id,
                position,
                message.id,
                message.sender,
                message.content,
                message.timestamp,
                message.is_streaming,
                message.status.value,
                None if tool is None else _dump_json(tool),
            ),
        )

    def save_wallet_tx(self, session_id: str, tx: WalletTx, status: WalletStatus | None) -> None:
        """Queue an upsert of the transaction; its first resolution time orders `load`'s map."""
        self._enqueue(
            _UPSERT_WALLET_TX,
            (
                session_id,
                tx.id,
                tx.to,
                tx.value,
                tx.data,
                tx.chain_id,
                tx.network,
                tx.description,
                tx.created_at,
                tx.expires_at,
                None if status is None else status.value,
                None if status is None else utc_timestamp(),
            ),
        )

    def _enqueue(self, sql: str, params: _Params) -> None:
        if self._writer is None or self._closing:
            raise StoreError(f"The store {self._where()} is not open; nothing was saved.")
        self._queue.append((sql, params))
        if len(self._queue) == 1:
            self._wakeup.set()

    async def flush(self) -> None:
        """Wait until every write queued before this call is committed.

        Waiters share the future of the batch their writes are in, so a hundred flushes
        cost one commit. The future is shielded: a cancelled caller must not cancel the
        commit the others wait for.
        """
        if self._queue:
            if self._writer is None or self._writer.done():
                raise StoreError(f"The store {self._where()} is not writing; nothing was saved.")
            if self._queued_done is None:
                self._queued_done = _batch_future()
            done = self._queued_done
            self._urgent.set()
        elif self._committing is not None:
            done = self._committing
        else:
            return
        await asyncio.shield(done)

    async def _write_batches(self) -> None:
        """The writer task: one batch at a time, until closed with an empty queue."""
        while True:
            await self._wakeup.wait()
            if self._queue and not self._urgent.is_set():
                await self._linger()
            self._wakeup.clear()
            self._urgent.clear()
            if self._queue:
                await self._commit_queue()
            elif self._closing:
                return

    async def _linger(self) -> None:
        """Give more writes `batch_interval` to join this batch, unless someone flushes."""
        if self._batch_interval <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._batch_interval):
                await self._urgent.wait()

    async def _commit_queue(self) -> None:
        writes, done = self._queue, self._queued_done or _batch_future()
        self._queue, self._queued_done = [], None
        self._committing = done
        try:
            await self._commit(writes)
        except Exception as exc:  # any failure: report it, keep the writer alive
            error = self._batch_failed(writes, exc)
            if not done.done():
                done.set_exception(error)
        else:
            if not done.done():
                done.set_result(None)
        self._committing = None

    async def _commit(self, writes: list[_Write]) -> None:
        """Run the writes in order, in one transaction; runs of one statement go together."""
        db = self._connection()
        ignored = 0
        async with self._lock:
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
        if ignored:
            logger.info("Ignored %d writes for sessions that are no longer stored", ignored)

    def _batch_failed(self, writes: list[_Write], exc: Exception) -> StoreError:
        """Log a lost batch without contents or full ids; the error for its flushes."""
        sessions = sorted({redact(str(params[0])) for _, params in writes})
        logger.error(
            "Could not commit %d queued writes for %d sessions (%s) to %s: %s: %s",
            len(writes),
            len(sessions),
            ", ".join(sessions[:10]) + (", …" if len(sessions) > 10 else ""),
            self._where(),
            type(exc).__name__,
            exc,
        )
        return StoreError(
            f"Could not commit {len(writes)} queued writes to the SQLite database "
            f"{self._where()}: {exc}"
        )

    def _writer_stopped(self, writer: asyncio.Task[None]) -> None:
        """Fail the flushes still waiting if the writer ends early (cancelled at shutdown)."""
        for done in (self._committing, self._queued_done):
            if done is not None and not done.done():
                done.set_exception(
                    StoreError(f"The writer of {self._where()} stopped before committing.")
                )

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"The store {self._where()} is not open.")
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
        with _unreadable(session_id):
            return StoredSession(
                id=session_id,
                network=network,
                title=title,
                created_at=created_at,
                last_active_at=last_active_at,
                messages=[_message(row) for row in reversed(newest)],
                older_messages=int(counted[0][0]),
                pending_wallet_tx=_wallet_tx(pending[0]) if pending else None,
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
        with _unreadable(session_id):
            messages = [_message(row) for row in reversed(rows[:limit])]
        return MessagePage(messages=messages, has_more=len(rows) > limit)

    async def delete(self, session_id: str) -> bool:
        """Delete the session, its messages and transactions (after queued writes land)."""
        await self.flush()
        return await self._delete(_DELETE_SESSION, (session_id,)) > 0

    async def delete_inactive_since(self, cutoff: datetime) -> int:
        """Delete sessions last active before `cutoff` (a naive datetime counts as UTC)."""
        await self.flush()
        return await self._delete(_DELETE_INACTIVE, (_cutoff_text(cutoff),))

    async def _delete(self, sql: str, params: _Params) -> int:
        """One autocommitted DELETE; the foreign keys cascade to messages and transactions."""
        db = self._connection()
        async with self._lock:
            try:
                cursor = await db.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreError(f"Could not delete from {self._where()}: {exc}") from exc
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
                raise StoreError(f"Could not read from {self._where()}: {exc}") from exc
            except BaseException:
                await _rollback(db)
                raise


# ---- helpers ---------------------------------------------------------------------------------


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


def _batch_future() -> asyncio.Future[None]:
    """A batch's future; an error nobody awaited (cancelled flushes) is not reported twice."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.add_done_callback(_consume_exception)
    return done


def _consume_exception(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def _dump_json(value: object) -> str:
    """JSON text; anything orjson cannot encode is stored as its `str`, never a lost write."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _iso_millis(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _canonical_time(value: str) -> str:
    """`value` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the app's own format passes unchanged)."""
    if _CANONICAL_TIME.fullmatch(value):
        return value
    return _iso_millis(_as_utc(datetime.fromisoformat(value)))


def _cutoff_text(cutoff: datetime) -> str:
    """The cutoff rounded UP to a millisecond, so `stored < cutoff` stays exact as text.

    Stored times are whole milliseconds; for those, `t < cutoff` and `t < ceil_ms(cutoff)`
    agree, whereas truncating the cutoff would spare a session 0.5 ms too old.
    """
    moment = _as_utc(cutoff)
    if spare := moment.microsecond % 1000:
        moment += timedelta(microseconds=1000 - spare)
    return _iso_millis(moment)


def _monotonic_deadline(expires_at: str) -> float:
    """The wall-clock expiry as a `time.monotonic()` value in this process."""
    remaining = _as_utc(datetime.fromisoformat(expires_at)) - datetime.now(UTC)
    return time.monotonic() + remaining.total_seconds()


def _message(row: Iterable[Any]) -> Message:
    _position, message_id, sender, content, timestamp, streaming, status, tool = row
    return Message(
        id=message_id,
        sender=_SENDERS[sender],
        content=content,
        timestamp=timestamp,
        is_streaming=bool(streaming),
        status=MessageStatus(status),
        tool=None if tool is None else _tool(tool),
    )


def _tool(text: str) -> ToolCallInfo:
    fields = orjson.loads(text)
    return ToolCallInfo(
        name=fields["name"],
        args=fields["args"],
        status=ToolStatus(fields["status"]),
        call_id=fields.get("call_id", ""),
        result=fields.get("result"),
        error=fields.get("error"),
    )


def _wallet_tx(row: Iterable[Any]) -> WalletTx:
    tx_id, to, value, data, chain_id, network, description, created_at, expires_at = row
    return WalletTx(
        id=tx_id,
        to=to,
        value=value,
        data=data,
        chain_id=chain_id,
        network=network,
        description=description,
        created_at=created_at,
        expires_at=expires_at,
        deadline=_monotonic_deadline(expires_at),
    )


@contextlib.contextmanager
def _unreadable(session_id: str) -> Iterator[None]:
    """Rows this code cannot decode (a newer enum value, bad JSON) become a `StoreError`."""
    try:
        yield
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(
            f"The stored data of session {redact(session_id)} cannot be read: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
