"""What the SQL stores share: saves queued as rows on one batch writer, and the reads.

Both backends keep the same tables; a backend supplies its statements in its own
dialect (`Statements`), a read snapshot (`_reading`, yielding a query function), a
one-statement delete and its connection handling. Everything else is written once here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final

from chatbot.model import (
    REMEMBERED_RESOLUTIONS,
    Message,
    WalletAccount,
    WalletStatus,
    WalletTx,
    public_id,
    scoped,
)
from chatbot.store.base import MessagePage, SessionSummary, StoredSession
from chatbot.store.records import (
    MESSAGE_COLUMNS,
    WALLET_TX_COLUMNS,
    cutoff_text,
    message_from_row,
    message_row,
    session_row,
    unreadable,
    wallet_account_from_text,
    wallet_tx_from_row,
    wallet_tx_row,
)
from chatbot.store.writer import BatchWriter, Params, Write

AFTER_ALL: Final = 2**63 - 1
"""A position bound above every stored position (64-bit integers in both databases)."""
_AFTER_ALL_TIMES: Final = "9999"
"""A time bound above every stored time (they are text, `YYYY-…`)."""

Query = Callable[[str, Params], Awaitable[list[tuple[Any, ...]]]]
"""Runs one statement inside a read snapshot; its rows."""


@dataclass(frozen=True, slots=True)
class Statements:
    """A backend's SQL for the shared tables, parameters in the order given here."""

    upsert_session: str
    """rows of (id, owner, network, title, created_at, last_active_at, wallet)"""
    upsert_message: str
    """rows of (session_id, *MESSAGE_COLUMNS); a row only while its session is stored"""
    upsert_wallet_tx: str
    """rows of (session_id, *WALLET_TX_COLUMNS, status, resolved_at); likewise"""
    select_session: str
    """(id) -> network, title, created_at, last_active_at, wallet"""
    select_messages_before: str
    """(session_id, position, limit) -> MESSAGE_COLUMNS, newest first"""
    count_messages_before: str
    """(session_id, position) -> count"""
    select_position_of: str
    """(session_id, message id) -> min(position), NULL when absent"""
    select_pending_tx: str
    """(session_id) -> WALLET_TX_COLUMNS of the newest unresolved transaction"""
    select_resolved_txs: str
    """(session_id, limit) -> id, status; most recently resolved first"""
    select_all_txs: str
    """(session_id) -> WALLET_TX_COLUMNS, status; resolved in order, pending last"""
    select_ids_after: str
    """(id, limit) -> id, in id order"""
    count_sessions: str
    """() -> count"""
    delete_session: str
    """(id)"""
    delete_inactive: str
    """(cutoff text)"""
    select_owned: str
    """(owner, last_active_at, id, limit) -> id, title, created_at, last_active_at, count"""
    count_owned: str
    """(owner) -> count"""
    select_owned_ids: str
    """(owner) -> id"""
    copy_session: str
    """(new id, new owner, old id): the session row under its new key"""
    move_messages: str
    """(new id, old id)"""
    move_wallet_txs: str
    """(new id, old id)"""


_UPSERT_SESSION = """
INSERT INTO sessions (id, owner, network, title, created_at, last_active_at, wallet)
{rows}
ON CONFLICT (id) DO UPDATE SET
    network = excluded.network,
    title = excluded.title,
    last_active_at = excluded.last_active_at,
    wallet = excluded.wallet
"""
_UPSERT_MESSAGE = """
INSERT INTO messages
    (session_id, position, id, sender, content, timestamp, is_streaming, status, tool)
{rows}
ON CONFLICT (session_id, position) DO UPDATE SET
    id = excluded.id,
    sender = excluded.sender,
    content = excluded.content,
    timestamp = excluded.timestamp,
    is_streaming = excluded.is_streaming,
    status = excluded.status,
    tool = excluded.tool
"""
_UPSERT_WALLET_TX = """
INSERT INTO wallet_txs (session_id, id, "to", value, data, chain_id, network, description,
                        created_at, expires_at, simulation, token_call, status, resolved_at)
{rows}
ON CONFLICT (session_id, id) DO UPDATE SET
    "to" = excluded."to",
    value = excluded.value,
    data = excluded.data,
    chain_id = excluded.chain_id,
    network = excluded.network,
    description = excluded.description,
    created_at = excluded.created_at,
    expires_at = excluded.expires_at,
    simulation = excluded.simulation,
    token_call = excluded.token_call,
    status = excluded.status,
    resolved_at = CASE WHEN excluded.status IS NULL THEN NULL
                       ELSE coalesce(wallet_txs.resolved_at, excluded.resolved_at) END
"""


def statements(
    *,
    param: str,
    insertion_order: str,
    session_rows: str,
    message_rows: str,
    wallet_tx_rows: str,
) -> Statements:
    """A backend's statements, in its placeholder style.

    `session_rows`, `message_rows` and `wallet_tx_rows` are where the upserts' rows come
    from: the parameters of one row (Postgres), or a whole batch's rows in one JSON
    parameter (SQLite). Messages and transactions come only while their session is
    stored: a late save for a session just
    deleted then neither resurrects it nor fails the whole batch (and with it other
    users' writes) on the foreign key. `insertion_order` is the column that orders rows
    as they were inserted (SQLite's `rowid`, an identity column in Postgres), the
    tie-break between equal timestamps.
    """
    p = param
    return Statements(
        upsert_session=_UPSERT_SESSION.format(rows=session_rows),
        upsert_message=_UPSERT_MESSAGE.format(rows=message_rows),
        upsert_wallet_tx=_UPSERT_WALLET_TX.format(rows=wallet_tx_rows),
        select_session=(
            "SELECT network, title, created_at, last_active_at, wallet"
            f" FROM sessions WHERE id = {p}"
        ),
        select_messages_before=(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = {p} AND position < {p}"
            f" ORDER BY position DESC LIMIT {p}"
        ),
        count_messages_before=(
            f"SELECT count(*) FROM messages WHERE session_id = {p} AND position < {p}"
        ),
        select_position_of=(
            f"SELECT min(position) FROM messages WHERE session_id = {p} AND id = {p}"
        ),
        select_pending_tx=(
            f"SELECT {WALLET_TX_COLUMNS} FROM wallet_txs WHERE session_id = {p}"
            f" AND status IS NULL ORDER BY created_at DESC, {insertion_order} DESC LIMIT 1"
        ),
        select_resolved_txs=(
            f"SELECT id, status FROM wallet_txs WHERE session_id = {p} AND status IS NOT NULL"
            f" ORDER BY resolved_at DESC, {insertion_order} DESC LIMIT {p}"
        ),
        select_all_txs=(
            f"SELECT {WALLET_TX_COLUMNS}, status FROM wallet_txs WHERE session_id = {p}"
            f" ORDER BY resolved_at IS NULL, resolved_at, {insertion_order}"
        ),
        select_ids_after=f"SELECT id FROM sessions WHERE id > {p} ORDER BY id LIMIT {p}",
        count_sessions="SELECT count(*) FROM sessions",
        delete_session=f"DELETE FROM sessions WHERE id = {p}",
        delete_inactive=f"DELETE FROM sessions WHERE last_active_at < {p}",
        select_owned=(
            "SELECT id, title, created_at, last_active_at,"
            " (SELECT count(*) FROM messages WHERE messages.session_id = sessions.id)"
            f" FROM sessions WHERE owner = {p} AND (last_active_at, id) < ({p}, {p})"
            f" ORDER BY last_active_at DESC, id DESC LIMIT {p}"
        ),
        count_owned=f"SELECT count(*) FROM sessions WHERE owner = {p}",
        select_owned_ids=f"SELECT id FROM sessions WHERE owner = {p}",
        copy_session=(
            "INSERT INTO sessions (id, owner, network, title, created_at, last_active_at, wallet)"
            f" SELECT {p}, {p}, network, title, created_at, last_active_at, wallet"
            f" FROM sessions WHERE id = {p}"
        ),
        move_messages=f"UPDATE messages SET session_id = {p} WHERE session_id = {p}",
        move_wallet_txs=f"UPDATE wallet_txs SET session_id = {p} WHERE session_id = {p}",
    )


class SqlStore(ABC):
    """A `Store` on SQL tables; subclasses connect, migrate and run the statements."""

    statements: ClassVar[Statements]
    where: str
    _writer: BatchWriter

    @abstractmethod
    def _reading(self) -> AbstractAsyncContextManager[Query]:
        """A read snapshot, so the several queries of one load agree."""

    @abstractmethod
    async def _commit(self, writes: list[Write]) -> None:
        """Commit one of the writer's batches (upserts only, see `_grouped`)."""

    @abstractmethod
    async def _transact(self, writes: list[Write]) -> None:
        """Run any statements in order, in one transaction."""

    @abstractmethod
    async def _delete(self, sql: str, params: Params) -> int:
        """One autocommitted DELETE (the foreign keys cascade); how many sessions it hit."""

    # ---- queued writes -------------------------------------------------------------------

    def _grouped(self, writes: list[Write]) -> list[tuple[str, list[Params]]]:
        """A batch as one group of rows per statement, the sessions' rows first.

        Order within a batch matters only there: a message or transaction row is written
        only while its session's row exists. Each row appears once in a batch (the writer
        keeps its newest save), so nothing else depends on order, and a batch of a
        thousand interleaved saves costs three statements, not hundreds.
        """
        groups: dict[str, list[Params]] = {self.statements.upsert_session: []}
        for sql, params in writes:
            groups.setdefault(sql, []).append(params)
        return [(sql, rows) for sql, rows in groups.items() if rows]

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
        wallet: WalletAccount | None = None,
    ) -> None:
        """Queue an upsert of the session row; `created_at` is kept from the first save."""
        self._writer.enqueue(
            self.statements.upsert_session,
            session_row(session_id, network, title, created_at, last_active_at, wallet),
            (session_id,),
        )

    def save_message(self, session_id: str, position: int, message: Message) -> None:
        """Queue an upsert of the message as it is now (later changes need another save)."""
        self._writer.enqueue(
            self.statements.upsert_message,
            message_row(session_id, position, message),
            (session_id, position),
        )

    def save_wallet_tx(self, session_id: str, tx: WalletTx, status: WalletStatus | None) -> None:
        """Queue an upsert of the transaction; its first resolution time orders `load`'s map."""
        self._writer.enqueue(
            self.statements.upsert_wallet_tx,
            wallet_tx_row(session_id, tx, status),
            (session_id, tx.id),
        )

    async def flush(self) -> None:
        """Wait until every write queued before this call is committed."""
        await self._writer.flush()

    # ---- reads and deletes ------------------------------------------------------------------

    async def load(self, session_id: str, limit: int) -> StoredSession | None:
        """The session with its newest `limit` messages; queued writes are flushed first."""
        await self.flush()
        sql = self.statements
        async with self._reading() as query:
            found = await query(sql.select_session, (session_id,))
            if not found:
                return None
            network, title, created_at, last_active_at, wallet = found[0]
            newest = await query(sql.select_messages_before, (session_id, AFTER_ALL, max(limit, 0)))
            oldest_shown = newest[-1][0] if newest else AFTER_ALL
            counted = await query(sql.count_messages_before, (session_id, oldest_shown))
            pending = await query(sql.select_pending_tx, (session_id,))
            resolved = await query(sql.select_resolved_txs, (session_id, REMEMBERED_RESOLUTIONS))
        with unreadable(session_id):
            return StoredSession(
                id=session_id,
                network=network,
                title=title,
                created_at=created_at,
                last_active_at=last_active_at,
                wallet=wallet_account_from_text(wallet),
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
        sql = self.statements
        limit = max(limit, 0)
        async with self._reading() as query:
            if not await query(sql.select_session, (session_id,)):
                return None
            bound = AFTER_ALL
            if before is not None:
                found = await query(sql.select_position_of, (session_id, before))
                if not found or found[0][0] is None:
                    return None
                bound = int(found[0][0])
            # One row more than asked says whether older ones exist.
            rows = await query(sql.select_messages_before, (session_id, bound, limit + 1))
        with unreadable(session_id):
            messages = [message_from_row(row) for row in reversed(rows[:limit])]
        return MessagePage(messages=messages, has_more=len(rows) > limit)

    async def delete(self, session_id: str) -> bool:
        """Delete the session, its messages and transactions (after queued writes land)."""
        await self.flush()
        return await self._delete(self.statements.delete_session, (session_id,)) > 0

    async def delete_inactive_since(self, cutoff: datetime) -> int:
        """Delete sessions last active before `cutoff` (a naive datetime counts as UTC)."""
        await self.flush()
        return await self._delete(self.statements.delete_inactive, (cutoff_text(cutoff),))

    async def count_sessions(self) -> int:
        """How many sessions are stored."""
        await self.flush()
        async with self._reading() as query:
            rows = await query(self.statements.count_sessions, ())
        return int(rows[0][0])

    async def session_ids(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` stored session ids after `after`, in id order."""
        async with self._reading() as query:
            rows = await query(self.statements.select_ids_after, (after or "", limit))
        return [str(row[0]) for row in rows]

    async def owned(
        self, scope: str, before: tuple[str, str] | None, limit: int
    ) -> list[SessionSummary]:
        """A scope's sessions, most recently active first, after the cursor `before`."""
        await self.flush()
        last_active, last_id = before or (_AFTER_ALL_TIMES, "")
        async with self._reading() as query:
            rows = await query(
                self.statements.select_owned, (scope, last_active, last_id, max(limit, 0))
            )
        return [
            SessionSummary(
                id=row[0],
                title=row[1],
                created_at=row[2],
                last_active_at=row[3],
                message_count=int(row[4]),
            )
            for row in rows
        ]

    async def count_owned(self, scope: str) -> int:
        """How many sessions a scope owns (after the writes queued so far)."""
        await self.flush()
        async with self._reading() as query:
            rows = await query(self.statements.count_owned, (scope,))
        return int(rows[0][0])

    async def owned_ids(self, scope: str) -> list[str]:
        """The keys of every session a scope owns (after the writes queued so far)."""
        await self.flush()
        async with self._reading() as query:
            rows = await query(self.statements.select_owned_ids, (scope,))
        return [str(row[0]) for row in rows]

    async def move_owned(self, source: str, target: str) -> list[str]:
        """Re-key the sessions of `source` under `target` in one transaction."""
        await self.flush()
        sql = self.statements
        async with self._reading() as query:
            theirs = [str(row[0]) for row in await query(sql.select_owned_ids, (source,))]
            ours = {public_id(str(row[0])) for row in await query(sql.select_owned_ids, (target,))}
        moves = [
            (old, scoped(public_id(old), target)) for old in theirs if public_id(old) not in ours
        ]
        writes: list[Write] = []
        for old, new in moves:
            writes += [
                (sql.copy_session, (new, target, old)),
                (sql.move_messages, (new, old)),
                (sql.move_wallet_txs, (new, old)),
                (sql.delete_session, (old,)),
            ]
        if writes:
            await self._transact(writes)
        return [old for old, _ in moves]

    async def wallet_txs(self, session_id: str) -> list[tuple[WalletTx, WalletStatus | None]]:
        """Every transaction of the session with its status, resolved first, in order."""
        async with self._reading() as query:
            rows = await query(self.statements.select_all_txs, (session_id,))
        with unreadable(session_id):
            return [
                (wallet_tx_from_row(row[:-1]), None if row[-1] is None else WalletStatus(row[-1]))
                for row in rows
            ]
