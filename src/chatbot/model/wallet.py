"""A transaction the agent proposes and the user's wallet answers, and how it ended."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from chatbot.model.time import utc_timestamp

REMEMBERED_RESOLUTIONS = 32
"""How many resolved transaction ids a session remembers, so late answers get 409 or 410."""


class WalletStatus(StrEnum):
    """How a proposed transaction ended."""

    SENT = "sent"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class WalletAccount:
    """The wallet the user's client reports for a session: account and chain."""

    address: str
    chain_id: int | None = None

    def public(self) -> dict[str, object]:
        """As stored and as the state shows it."""
        return {"address": self.address, "chain_id": self.chain_id}


@dataclass(frozen=True, slots=True)
class Simulation:
    """How a proposed transaction fared when tried on its network before it was shown."""

    ok: bool
    gas: int | None = None
    """`eth_estimateGas`; None when it would revert."""
    fee_wei: int | None = None
    """gas * (base fee + tip); None when it would revert."""
    revert_reason: str | None = None

    def public(self) -> dict[str, object]:
        """As clients see it; wei as a decimal string (it outgrows JSON numbers)."""
        return {
            "ok": self.ok,
            "gas": self.gas,
            "fee_wei": None if self.fee_wei is None else str(self.fee_wei),
            "revert_reason": self.revert_reason,
        }

    @classmethod
    def from_public(cls, data: dict[str, object]) -> Simulation:
        """Back from `public()` (stored rows)."""
        gas, fee = data.get("gas"), data.get("fee_wei")
        reason = data.get("revert_reason")
        return cls(
            ok=bool(data.get("ok")),
            gas=None if gas is None else int(str(gas)),
            fee_wei=None if fee is None else int(str(fee)),
            revert_reason=None if reason is None else str(reason),
        )


@dataclass(frozen=True, slots=True)
class TokenCall:
    """The ERC-20 call a proposal makes, in the token's own units, for people to read."""

    function: str
    """`transfer`, `transferFrom` or `approve`."""
    token: str
    symbol: str | None
    decimals: int
    amount: str
    """The raw amount, a decimal string."""
    amount_formatted: str
    """In token units; "unlimited" for an approval of 2**256 - 1."""
    counterparty: str
    """The recipient (transfers) or the spender (approvals)."""

    def public(self) -> dict[str, object]:
        """As clients see it (and as it is stored)."""
        return {
            "function": self.function,
            "token": self.token,
            "symbol": self.symbol,
            "decimals": self.decimals,
            "amount": self.amount,
            "amount_formatted": self.amount_formatted,
            "counterparty": self.counterparty,
        }

    @classmethod
    def from_public(cls, data: dict[str, Any]) -> TokenCall:
        """Back from `public()` (stored rows)."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


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
    simulation: Simulation | None = None
    """None when it could not be tried (no wallet address known, or the node was away)."""
    token_call: TokenCall | None = None
    """What it does to an ERC-20 token, when it calls one."""

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
            "simulation": None if self.simulation is None else self.simulation.public(),
            "token_call": None if self.token_call is None else self.token_call.public(),
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
