"""What one turn hands to instructions and tools: its own session, never another's."""

from __future__ import annotations

from dataclasses import dataclass

from chatbot.sessions.session import Session


@dataclass(frozen=True, slots=True)
class TurnDeps:
    """Per-turn context: the session (for app-side tools), its network and chain id."""

    session: Session
    network: str
    chain_id: int
