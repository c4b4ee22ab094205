"""A session's wallet slot: at most one pending transaction, resolved exactly once.

It resolves `sent` (with its hash), `rejected` or `failed`; after its deadline it is
`expired`. Answers to a transaction that was already resolved are told so (409),
answers to one that never existed are not found (404).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict

from chatbot.errors import (
    InvalidInput,
    WalletTxAlreadyResolved,
    WalletTxExpired,
    WalletTxNotFound,
)
from chatbot.model import REMEMBERED_RESOLUTIONS, WalletResolution, WalletStatus, WalletTx

TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


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
