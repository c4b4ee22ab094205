"""The two faces between a session and the agent that answers it.

`TurnRunner` is what a session needs from the agent; `Transcript` is all the agent may
do to a session while its turn runs: read the history, the network and the user's
wallet, write messages as they stream, propose a transaction. Kept this narrow so a turn
can run against a session held anywhere (in this process, or on a cluster's lease holder).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from chatbot.model import (
    Message,
    MessageStatus,
    Simulation,
    TokenCall,
    WalletAccount,
    WalletTx,
)


class Transcript(Protocol):
    """One session as a running turn sees it."""

    @property
    def id(self) -> str:
        """The session id (logs show only its prefix)."""

    @property
    def network(self) -> str:
        """The session's network, which its tools act on."""

    @property
    def account(self) -> WalletAccount | None:
        """The user's wallet as their client reported it (or their signed-in address)."""

    @property
    def messages(self) -> Sequence[Message]:
        """The conversation so far, oldest first (the model's history)."""

    def start_agent_message(self) -> Message:
        """Open an agent message that text deltas will stream into."""

    def append_text(self, message: Message, text: str) -> None:
        """Stream a piece of text into an open agent message."""

    def finish_message(self, message: Message, status: MessageStatus) -> None:
        """Close a streaming message with its final status."""

    def start_tool(self, call_id: str, name: str, args: dict[str, Any]) -> Message:
        """Show a tool call as its own message, running."""

    def finish_tool(
        self, message: Message, *, result: Any = None, error: str | None = None
    ) -> None:
        """Record a tool call's result or error."""

    def add_system_message(self, text: str) -> Message:
        """Show a system message."""

    def propose_wallet_tx(
        self,
        *,
        to: str,
        value: str,
        data: str,
        description: str,
        simulation: Simulation | None = None,
        token_call: TokenCall | None = None,
    ) -> WalletTx:
        """Ask the user's wallet to sign a transaction on the session's network."""

    async def checkpoint(self) -> None:
        """Make everything written so far durable before the turn's next step."""


class TurnRunner(Protocol):
    """Runs one agent turn against a transcript (the agent runtime implements this)."""

    def check_available(self) -> None:
        """Raise a `ChatbotError` when no turn can run at all (e.g. a missing API key)."""

    async def run_turn(self, transcript: Transcript, trigger: Message) -> None:
        """Produce the agent's reply to `trigger`, writing it into the transcript as it streams."""

    @property
    def writes_titles(self) -> bool:
        """True when the model names conversations (`title`); else they keep their first words."""

    async def title(self, exchange: Sequence[Message]) -> str | None:
        """A short title for a conversation's first exchange; None when none came."""
