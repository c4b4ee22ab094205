"""`python -m bench.turncost`: the CPU one agent turn costs the process, start to finish.

In process, with nothing else to pay for: the null store, the scripted model replying
one word as fast as it can, no tools but the wallet's. N sessions each get one message
(the first 20 warm up, unmeasured); the process CPU until every turn has ended, divided
by the turns, is what a turn costs in our code and pydantic-ai's. PROF=1 writes a
cProfile of the measured turns to var/turncost.prof.

It measured the turn loop that replaced `Agent.iter` (see chatbot/agent/loop.py).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import time
from pathlib import Path

import uvloop

from bench.nullstore import NullStore
from chatbot.agent.providers import build_backend
from chatbot.agent.runtime import AgentRuntime
from chatbot.config import Settings
from chatbot.metrics import Metrics
from chatbot.sessions.manager import SessionManager
from chatbot.tools.wallet import wallet_toolset

WARM_UP = 20


async def turn_cost(count: int, profile: Path | None) -> float:
    """Milliseconds of CPU per turn, over `count - WARM_UP` turns on as many sessions."""
    settings = Settings(
        llm_provider="scripted",
        scripted_tokens_per_second=0,
        scripted_reply="ok",
        max_sessions_per_principal=count,
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = AgentRuntime(build_backend(settings), settings, [wallet_toolset()])
    manager = SessionManager(settings, runtime, Metrics(), NullStore())
    manager.start()
    sessions = [manager.create(f"s{i}") for i in range(count)]
    for session in sessions[:WARM_UP]:
        await session.submit_chat("hi")
    await asyncio.sleep(0.5)
    profiler = cProfile.Profile() if profile else None
    began = time.process_time()
    if profiler:
        profiler.enable()
    for session in sessions[WARM_UP:]:
        await session.submit_chat("hi")
    # Polled: a session announces the end of a turn only to its streams, and none is open.
    while any(session.is_processing for session in sessions):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    if profiler:
        profiler.disable()
    spent = time.process_time() - began
    if profiler and profile:
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile)
    await manager.stop()
    return spent / (count - WARM_UP) * 1e3


def main() -> None:
    count = int(os.environ.get("N", "500"))
    profile = Path("var/turncost.prof") if os.environ.get("PROF") else None
    cost = uvloop.run(turn_cost(count, profile))
    print(f"{count - WARM_UP} turns: {cost:.3f} ms of CPU per turn")


if __name__ == "__main__":
    main()
