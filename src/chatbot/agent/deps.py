"""What one turn hands to instructions and tools: its own session, never another's."""

from __future__ import annotations

from dataclasses import dataclass

from chatbot.sessions.ports import Transcript


@dataclass(frozen=True, slots=True)
class TurnDeps:
    """Per-turn context: the session's transcript (for app-side tools), network and chain id."""

    session: Transcript
    network: str
    chain_id: int
