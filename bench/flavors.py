"""The servers a scenario can run against, described the same way.

All of them take `POST /api/chat {session_id, message}` and stream the scripted reply
(same tokens, same rate, same stamps); they differ in how a session is made and where
its stream is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from bench.loadgen import Connection
from bench.target import baseline_command, free_port, ours_command, ours_env


@dataclass(frozen=True)
class Flavor:
    """One server and one of its streams."""

    name: str
    label: str
    module: str | None  # a bench.baselines module; None: our server
    legacy: bool = False  # the full-state stream of the original API
    probed: bool = False  # ours under bench/lagprobe.py, its event loop timed

    def command(self, port: int) -> list[str]:
        """How to start it."""
        if self.module is None:
            return ours_command(port, "bench.lagprobe" if self.probed else "chatbot")
        return baseline_command(self.module, port)

    def env(self, tokens_per_second: float, reply: str, **extra: str) -> dict[str, str]:
        """Its settings: the same scripted reply for everyone."""
        if self.module is None:
            return ours_env(tokens_per_second, reply, **extra)
        return {
            "SCRIPTED_REPLY": reply,
            "SCRIPTED_TOKENS_PER_SECOND": str(tokens_per_second),
            **extra,
        }

    def stream_path(self, session_id: str) -> str:
        """Where the session's events stream is."""
        if self.legacy:
            return f"/api/chat/stream?session_id={session_id}"
        return f"/api/sessions/{session_id}/events"

    async def new_session(self, connection: Connection) -> str:
        """A session id the server knows (ours makes them; the baselines take any)."""
        if self.module is None:
            response = await connection.request("POST", "/api/sessions")
            assert response.status == 201, response.body
            session_id: str = response.json()["session_id"]
            return session_id
        return str(uuid.uuid4())


OURS = Flavor("ours", "chatbot (events stream)", None)
OURS_PROBED = Flavor("ours_probed", "chatbot (event loop timed)", None, probed=True)
OURS_LEGACY = Flavor("ours_legacy", "chatbot (legacy stream)", None, legacy=True)
SEED = Flavor("seed_polling", "original design (full state / 100 ms)", "seed_polling", legacy=True)
FASTAPI = Flavor("fastapi_sse", "FastAPI fastapi.sse", "fastapi_sse")
CEILING = Flavor("raw_ceiling", "raw asyncio (ceiling)", "raw_ceiling")


def port() -> int:
    """A free port for the next server."""
    return free_port()
