"""Pending wallet transactions: proposed by the agent, answered once by the user's wallet.

A session holds at most one pending transaction. It resolves exactly once: `sent`
(with its hash), `rejected` or `failed`; after its deadline it is `expired`. Answers
to a transaction that was already resolved are told so (409), answers to one that
never existed are not found (404).
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import orjson

from chatbot.errors import (
    InvalidInput,
    WalletTxAlreadyResolved,
    WalletTxExpired,
    WalletTxNotFound,
)
from chatbot.sessions.messages import utc_timestamp

TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
REMEMBERED_RESOLUTIONS = 32


class WalletStatus(StrEnum):
    """How a proposed transaction ended."""

    SENT = "sent"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(slots=True, kw_only=True)
class WalletTx:
    """A transaction waiting for the user's wallet, in the shape clients receive."""

    id: str = field(default_factory=lambda: "tx_" + secrets.token_hex(8))
    to: str
    value: str
    data: str
    chain_id: int
    network: str
    description: str
    created_at: str = field(default_factory=utc_timestamp)
    expires_at: str
    deadline: float = field(repr=False)

    def public(self) -> dict[str, object]:
        """What clients see (the monotonic deadline is the server's own business)."""
        return {
            "id": self.id,
            "to": self.to,
            "value": self.value,
            "data": self.data,
            "chain_id": self.chain_id,
            "network": self.network,
            "description": self.description,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }

    def original_json(self) -> str:
        """The original app's `pending_wallet_tx`: a JSON *string* its clients `JSON.parse`.

        Only the fields the original sent, so its clients' string comparison of "the same
        request" keeps holding; the typed form with id, chain and expiry is `public()`.
        """
        return orjson.dumps(
            {
                "to": self.to,
                "value": self.value,
                "data": self.data,
                "description": self.description,
                "timestamp": self.created_at,
            }
        ).decode()


@dataclass(frozen=True, slots=True)
class WalletResolution:
    """The answer a pending transaction got."""

    tx_id: str
    status: WalletStatus
    hash: str | None = None
    error: str | None = None

    def note(self) -> str:
        """The system message the agent continues from (the original app's wording)."""
        if self.status is WalletStatus.SENT:
            return f"Transaction sent: {self.hash}"
        if self.status is WalletStatus.REJECTED:
            return f"Transaction rejected by user: {self.error or 'no reason given'}"
        if self.status is WalletStatus.FAILED:
            return f"Transaction failed: {self.error or 'unknown error'}"
        return "The transaction request expired before the wallet answered."


def iso_in(seconds: float) -> str:
    """An ISO-8601 UTC timestamp `seconds` from now."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WalletSlot:
    """A session's pending transaction and the ids it recently resolved."""

    __slots__ = ("pending", "resolved")

    def __init__(self) -> None:
        self.pending: WalletTx | None = None
        self.resolved: OrderedDict[str, WalletStatus] = OrderedDict()

    def resolve(
        self, tx_id: str, status: WalletStatus, hash: str | None, error: str | None
    ) -> WalletResolution:
        """Resolve the pending transaction exactly once, or say why not."""
        pending = self.pending
        if pending is None or pending.id != tx_id:
            if self.resolved.get(tx_id) is WalletStatus.EXPIRED:
                raise WalletTxExpired(f"Transaction {tx_id} expired before the wallet answered.")
            if tx_id in self.resolved:
                raise WalletTxAlreadyResolved(
                    f"Transaction {tx_id} was already resolved ({self.resolved[tx_id].value})."
                )
            raise WalletTxNotFound(f"No pending transaction {tx_id[:40]!r} in this session.")
        if status is WalletStatus.SENT and (hash is None or not TX_HASH.fullmatch(hash)):
            raise InvalidInput("A sent transaction needs its hash: 0x and 64 hex digits.")
        if time.monotonic() > pending.deadline:
            self._forget(pending.id, WalletStatus.EXPIRED)
            raise WalletTxExpired(f"Transaction {tx_id} expired at {pending.expires_at}.")
        self._forget(pending.id, status)
        return WalletResolution(tx_id, status, hash, error)

    def expire(self) -> WalletResolution | None:
        """Expire the pending transaction if its deadline has passed."""
        pending = self.pending
        if pending is None or time.monotonic() <= pending.deadline:
            return None
        self._forget(pending.id, WalletStatus.EXPIRED)
        return WalletResolution(pending.id, WalletStatus.EXPIRED)

    def _forget(self, tx_id: str, status: WalletStatus) -> None:
        self.pending = None
        self.resolved[tx_id] = status
        while len(self.resolved) > REMEMBERED_RESOLUTIONS:
            self.resolved.popitem(last=False)
