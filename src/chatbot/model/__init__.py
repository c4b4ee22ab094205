"""The domain types every layer shares: messages, tool calls, wallet transactions, ids, time.

A leaf package: it imports nothing else of the app, so the store, the settings, the
sessions, the agent and the routes can all use it without depending on one another.
"""

from chatbot.model.ids import (
    is_valid_session_id,
    new_session_id,
    public_id,
    redact,
    scope_in,
    scope_of,
    scoped,
)
from chatbot.model.messages import (
    Message,
    MessageStatus,
    Sender,
    ToolCallInfo,
    ToolStatus,
    new_message_id,
)
from chatbot.model.time import iso_in, iso_utc, parse_iso, utc_timestamp
from chatbot.model.wallet import (
    REMEMBERED_RESOLUTIONS,
    Simulation,
    TokenCall,
    WalletAccount,
    WalletResolution,
    WalletStatus,
    WalletTx,
)

__all__ = [
    "REMEMBERED_RESOLUTIONS",
    "Message",
    "MessageStatus",
    "Sender",
    "Simulation",
    "TokenCall",
    "ToolCallInfo",
    "ToolStatus",
    "WalletAccount",
    "WalletResolution",
    "WalletStatus",
    "WalletTx",
    "is_valid_session_id",
    "iso_in",
    "iso_utc",
    "new_message_id",
    "new_session_id",
    "parse_iso",
    "public_id",
    "redact",
    "scope_in",
    "scope_of",
    "scoped",
    "utc_timestamp",
]
