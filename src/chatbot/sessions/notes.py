"""The original client's free-text system notes, read for what they mean.

The original app had no endpoint for wallet outcomes or the wallet's chain: its client
sent them as system messages (`POST /api/system`) in fixed wordings. Such a note is
still shown and given to the agent as it is; these parsers let the session also act on
it, so that client keeps working unchanged.
"""

from __future__ import annotations

import re

from chatbot.model import WalletStatus

_SENT_TEXT = re.compile(r"^\s*Transaction sent:\s*(0x[0-9a-fA-F]{64})\b")
_REJECTED_TEXT = re.compile(r"^\s*Transaction rejected by user:?\s*(.*)$", re.DOTALL)
_FAILED_TEXT = re.compile(r"^\s*Transaction failed:?\s*(.*)$", re.DOTALL)
# "Dectected" (sic) is what the original client sends; "Detected" is accepted as well.
_WALLET_NETWORK_TEXT = re.compile(
    r"^\s*Dec?tected user['\u2019]s wallet connected to ([A-Za-z0-9_.-]{1,64}) network\.?\s*$",
    re.IGNORECASE,
)


def resolution_from_text(text: str) -> tuple[WalletStatus, str | None, str | None] | None:
    """The outcome in the original app's free-text wallet reports, if it is one."""
    if sent := _SENT_TEXT.match(text):
        return WalletStatus.SENT, sent.group(1), None
    if rejected := _REJECTED_TEXT.match(text):
        return WalletStatus.REJECTED, None, rejected.group(1).strip() or None
    if failed := _FAILED_TEXT.match(text):
        return WalletStatus.FAILED, None, failed.group(1).strip() or None
    return None


def wallet_network_from_text(text: str) -> str | None:
    """The network name in the original client's "wallet connected to NAME network" note."""
    match = _WALLET_NETWORK_TEXT.match(text)
    return match.group(1) if match else None
