"""The names of every Redis key the cluster uses; each starts with REDIS_PREFIX.

docs/DEPLOY.md lists what each holds and how each is bounded (trimmed or expiring).
"""

from __future__ import annotations

from chatbot.model import scope_in, scope_of


class Keys:
    """Key and channel names under one prefix."""

    __slots__ = ("prefix", "turns")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.turns = f"{prefix}turns"
        """Sorted set: sessions whose turn runs, scored by when their lease runs out (ms)."""

    def lease(self, session_id: str) -> str:
        """String: the token of the worker holding the session; expires with the lease."""
        return f"{self.prefix}lease:{session_id}"

    def events(self, session_id: str) -> str:
        """Stream: the session's event frames, entry id `seq-0`, trimmed to EVENT_BUFFER_SIZE."""
        return f"{self.prefix}events:{session_id}"

    def channel(self, session_id: str) -> str:
        """Pub/sub channel: each batch of the session's new frames, for workers streaming it."""
        return f"{self.prefix}live:{session_id}"

    def owned_turns(self, session_id: str) -> str | None:
        """Sorted set: the running turns of one principal's sessions, scored like `turns`
        (MAX_TURNS_PER_PRINCIPAL counts those not run out); None for an unowned session."""
        scope = scope_in(session_id)
        return f"{self.prefix}running:{scope}" if scope else None

    def owned_streams(self, owner: str) -> str:
        """Sorted set: one principal's open streams on every worker, scored by when they
        count no more unless their worker renews them (MAX_STREAMS_PER_PRINCIPAL)."""
        return f"{self.prefix}streams:{scope_of(owner)}"

    def inbox(self, worker: str) -> str:
        """Pub/sub channel: requests to a worker and answers to its own requests."""
        return f"{self.prefix}worker:{worker}"

    @property
    def workers(self) -> str:
        """Hash: each worker's counts (sessions, streams, turns, queued) and when it sent them,
        refreshed as it renews its leases; a worker silent for three leases is removed."""
        return f"{self.prefix}workers"
