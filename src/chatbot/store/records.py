"""Domain types to database rows and back, the same for every backend.

Times are stored as text in the app's one form (`YYYY-MM-DDTHH:MM:SS.mmmZ`), so comparing
them as text is correct in any database; a tool call is stored as JSON text.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, Final

import orjson

from chatbot.model import (
    Message,
    MessageStatus,
    Sender,
    Simulation,
    TokenCall,
    ToolCallInfo,
    ToolStatus,
    WalletAccount,
    WalletStatus,
    WalletTx,
    iso_utc,
    parse_iso,
    redact,
    scope_in,
    utc_timestamp,
)
from chatbot.model.time import as_utc, monotonic_deadline
from chatbot.store.base import StoreError

_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_SENDERS: Final[dict[str, Sender]] = {"user": "user", "agent": "agent", "system": "system"}

MESSAGE_COLUMNS: Final = "position, id, sender, content, timestamp, is_streaming, status, tool"
WALLET_TX_COLUMNS: Final = (
    'id, "to", value, data, chain_id, network, description, created_at, expires_at, simulation,'
    " token_call"
)


def session_row(
    session_id: str,
    network: str,
    title: str | None,
    created_at: str,
    last_active_at: str,
    wallet: WalletAccount | None,
) -> tuple[object, ...]:
    """`(id, owner, network, title, created_at, last_active_at, wallet)`, times canonical.

    The owner is the scope the id carries (model/ids.py), NULL for an unscoped session.
    """
    return (
        session_id,
        scope_in(session_id) or None,
        network,
        title,
        canonical_time(created_at),
        canonical_time(last_active_at),
        None if wallet is None else dump_json(wallet.public()),
    )


def message_row(session_id: str, position: int, message: Message) -> tuple[object, ...]:
    """`(session_id, *MESSAGE_COLUMNS)` as the message is now."""
    tool = message.tool
    return (
        session_id,
        position,
        message.id,
        message.sender,
        message.content,
        message.timestamp,
        message.is_streaming,
        message.status.value,
        None if tool is None else dump_json(tool),
    )


def wallet_tx_row(session_id: str, tx: WalletTx, status: WalletStatus | None) -> tuple[object, ...]:
    """`(session_id, *WALLET_TX_COLUMNS, status, resolved_at)`; resolved now if `status`."""
    return (
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
        None if tx.simulation is None else dump_json(tx.simulation.public()),
        None if tx.token_call is None else dump_json(tx.token_call.public()),
        None if status is None else status.value,
        None if status is None else utc_timestamp(),
    )


def message_from_row(row: Iterable[Any]) -> Message:
    """A message from a row of `MESSAGE_COLUMNS`."""
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


def wallet_tx_from_row(row: Iterable[Any]) -> WalletTx:
    """A pending transaction from a row of `WALLET_TX_COLUMNS`, its deadline in this process."""
    (
        tx_id,
        to,
        value,
        data,
        chain_id,
        network,
        description,
        created_at,
        expires_at,
        tried,
        call,
    ) = row
    return WalletTx(
        id=tx_id,
        to=to,
        value=value,
        data=data,
        chain_id=int(chain_id),
        network=network,
        description=description,
        created_at=created_at,
        expires_at=expires_at,
        deadline=monotonic_deadline(expires_at),
        simulation=None if tried is None else Simulation.from_public(orjson.loads(tried)),
        token_call=None if call is None else TokenCall.from_public(orjson.loads(call)),
    )


def wallet_account_from_text(text: str | None) -> WalletAccount | None:
    """A session's wallet from its JSON column."""
    if text is None:
        return None
    fields = orjson.loads(text)
    chain_id = fields.get("chain_id")
    return WalletAccount(fields["address"], None if chain_id is None else int(chain_id))


def dump_json(value: object) -> str:
    """JSON text; anything orjson cannot encode is stored as its `str`, never a lost write."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def canonical_time(value: str) -> str:
    """`value` in the canonical form (the app's own timestamps pass unchanged)."""
    if _CANONICAL_TIME.fullmatch(value):
        return value
    return iso_utc(parse_iso(value))


def cutoff_text(cutoff: datetime) -> str:
    """The cutoff rounded UP to a millisecond, so `stored < cutoff` stays exact as text.

    Stored times are whole milliseconds; for those, `t < cutoff` and `t < ceil_ms(cutoff)`
    agree, whereas truncating the cutoff would spare a session 0.5 ms too old.
    """
    moment = as_utc(cutoff)
    if spare := moment.microsecond % 1000:
        moment += timedelta(microseconds=1000 - spare)
    return iso_utc(moment)


@contextlib.contextmanager
def unreadable(session_id: str) -> Iterator[None]:
    """Rows this code cannot decode (a newer enum value, bad JSON) become a `StoreError`."""
    try:
        yield
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreError(
            f"The stored data of session {redact(session_id)} cannot be read: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
