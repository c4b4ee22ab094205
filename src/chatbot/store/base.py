"""The storage interface: what a session needs to survive evictions and restarts.

Writes are queued and committed in batches, off the event loop; `flush` waits until
everything queued so far is on disk (a user message is flushed before its request is
answered). Reads are rare: a session is loaded once, on its first use after a start
or an eviction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from chatbot.errors import BackendUnavailable
from chatbot.model import Message, WalletAccount, WalletStatus, WalletTx


class StoreError(Exception):
    """The store cannot be used (corrupt, read-only, newer schema); the message says why."""


class StoreUnavailable(StoreError, BackendUnavailable):
    """The database is away for now (down, unreachable, locked); trying later may work.

    Also a `BackendUnavailable`, so a request that needed the database answers 503 with
    `Retry-After` wherever below the routes this was raised.
    """

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)


@dataclass(slots=True)
class StoredSession:
    """A session as stored: its newest messages and everything else it needs to go on."""

    id: str
    network: str
    title: str | None
    created_at: str
    last_active_at: str
    messages: list[Message]
    """The newest messages (at most the `limit` asked for), oldest first."""
    older_messages: int
    """How many stored messages come before `messages`."""
    wallet: WalletAccount | None = None
    """The wallet the client last reported (or the signed-in address)."""
    pending_wallet_tx: WalletTx | None = None
    resolved_wallet_txs: dict[str, WalletStatus] = field(default_factory=dict)
    """Recently resolved transaction ids (so late answers get 409 or 410, not 404)."""


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One line of a principal's list of conversations."""

    id: str
    title: str | None
    created_at: str
    last_active_at: str
    message_count: int


@dataclass(frozen=True, slots=True)
class MessagePage:
    """Older history, oldest first, and whether there is more before it."""

    messages: list[Message]
    has_more: bool


class Store(Protocol):
    """Durable sessions. Positions number a session's messages 0, 1, 2, … in order."""

    @property
    def where(self) -> str:
        """The database, for people: a file path, or database, host and port (no password)."""

    @property
    def available(self) -> bool:
        """False while the database is away and queued writes wait for it."""

    @property
    def retry_after(self) -> float:
        """Seconds a client should wait before trying again while it is away."""

    async def open(self) -> None:
        """Connect and migrate the schema; raise `StoreError` when the store is unusable."""

    async def close(self) -> None:
        """Commit everything queued, then disconnect."""

    async def load(self, session_id: str, limit: int) -> StoredSession | None:
        """The session with its newest `limit` messages, or None when it was never stored."""

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
        """Queue an upsert of the session's own row."""

    def save_message(self, session_id: str, position: int, message: Message) -> None:
        """Queue an upsert of the message at `position` (its content may have grown)."""

    def save_wallet_tx(self, session_id: str, tx: WalletTx, status: WalletStatus | None) -> None:
        """Queue an upsert of a proposed transaction; `status` None while it is pending."""

    async def flush(self) -> None:
        """Wait until every write queued before this call is committed."""

    async def delete(self, session_id: str) -> bool:
        """Delete the session and all it owns; False when there was nothing stored."""

    async def page(self, session_id: str, before: str | None, limit: int) -> MessagePage | None:
        """Messages before the one with id `before` (or the newest), at most `limit`.

        None when the session, or the `before` message, is not stored.
        """

    async def delete_inactive_since(self, cutoff: datetime) -> int:
        """Delete sessions last active before `cutoff`; returns how many."""

    async def schema_version(self) -> int:
        """How many migrations the database has applied."""

    async def count_sessions(self) -> int:
        """How many sessions are stored."""

    async def session_ids(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` stored session ids after `after`, in id order (for copying)."""

    async def owned(
        self, scope: str, before: tuple[str, str] | None, limit: int
    ) -> list[SessionSummary]:
        """A scope's sessions, most recently active first, after the `(last_active_at, id)`
        cursor `before`; at most `limit`."""

    async def owned_ids(self, scope: str) -> list[str]:
        """The keys of every session a scope owns."""

    async def count_owned(self, scope: str) -> int:
        """How many sessions a scope owns."""

    async def move_owned(self, source: str, target: str) -> list[str]:
        """Give the sessions of scope `source` to scope `target`, re-keyed; the keys moved.

        A session whose id the target already uses stays where it is.
        """

    async def wallet_txs(self, session_id: str) -> list[tuple[WalletTx, WalletStatus | None]]:
        """Every transaction of the session with its status, resolved first, in order."""
