"""Where a turn's and a token's CPU goes: the server's own code, in-process, by package.

The fan-out scenario measures the whole server from outside; this one runs the session
registry and the agent in this process (scripted model, a store that keeps nothing, no
sockets), so its figures are the agent loop's and the sessions' alone, and cProfile can
say which package spends them. Each measurement runs twice: unprofiled for the CPU
figure (cProfile roughly doubles it), profiled for the breakdown.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from bench.nullstore import NullStore
from chatbot.agent.providers import build_backend
from chatbot.agent.runtime import AgentRuntime
from chatbot.config import Settings
from chatbot.metrics import Metrics
from chatbot.sessions.events import StreamKind
from chatbot.sessions.manager import SessionManager
from chatbot.tools.wallet import wallet_toolset

WARM_UP = 20


def _manager(reply: str) -> SessionManager:
    settings = Settings(
        llm_provider="scripted",
        scripted_tokens_per_second=0,
        scripted_reply=reply,
        max_sessions_per_principal=1_000_000,
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = AgentRuntime(build_backend(settings), settings, [wallet_toolset()])
    manager = SessionManager(settings, runtime, Metrics(), NullStore())  # type: ignore[arg-type]
    manager.start()
    return manager


def _turns_ended(manager: SessionManager, count: int) -> asyncio.Event:
    """An event set once `count` more turns have ended (the registry's own hook, wrapped)."""
    done = asyncio.Event()
    left = count
    hook = manager.turn_ended

    def ended(session_id: str) -> None:
        nonlocal left
        hook(session_id)
        left -= 1
        if left == 0:
            done.set()

    manager.turn_ended = ended  # type: ignore[method-assign]
    return done


async def _turns(count: int) -> Callable[[], Awaitable[None]]:
    """`count` sessions, each answering one message with a one-token reply."""
    manager = _manager("ok")
    sessions = [manager.create(f"s{i}") for i in range(count + WARM_UP)]
    warm = _turns_ended(manager, WARM_UP)
    for session in sessions[:WARM_UP]:
        await session.submit_chat("hi")
    await warm.wait()

    async def run() -> None:
        done = _turns_ended(manager, count)
        for session in sessions[WARM_UP:]:
            await session.submit_chat("hi")
        await done.wait()
        await manager.stop()

    return run


async def _tokens(count: int) -> Callable[[], Awaitable[None]]:
    """One session streaming a reply of `count` tokens, with one subscriber reading it."""
    manager = _manager(" ".join(["tok"] * count))
    session = manager.create("s")
    subscriber = await manager.open_stream("s", StreamKind.EVENTS)

    async def read() -> None:
        while await subscriber.next_batch() is not None:
            pass

    async def run() -> None:
        reader = asyncio.create_task(read())
        done = _turns_ended(manager, 1)
        await session.submit_chat("go")
        await done.wait()
        await manager.stop()
        reader.cancel()

    return run


async def _measure(
    make: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]], count: int
) -> dict[str, Any]:
    """CPU per unit, unprofiled, and the profiled run's breakdown by package."""
    run = await make(count)
    started = time.process_time()
    await run()
    cpu_us = (time.process_time() - started) / count * 1e6
    run = await make(count)
    profile = cProfile.Profile()
    profile.enable()
    await run()
    profile.disable()
    return {"count": count, "cpu_us": cpu_us, "breakdown": _by_package(profile)}


def _by_package(profile: cProfile.Profile) -> list[tuple[str, float]]:
    """Own time per package (site-packages name, chatbot module, or stdlib), as shares."""
    totals: Counter[str] = Counter()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (path, _line, _name), (_cc, _nc, own, _cum, _callers) in stats.items():
        totals[_package(path)] += own
    whole = sum(totals.values()) or 1.0
    return [(name, own / whole) for name, own in totals.most_common(12)]


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/")[1].split("/")[0]
    if "/bench/" in path:
        return "bench"
    if "/chatbot/" in path:
        return "chatbot." + path.split("/chatbot/")[1].split("/")[0].removesuffix(".py")
    if path.startswith("~") or path.startswith("<"):
        return "builtins (C)"
    return "stdlib: " + path.rsplit("/", 1)[-1].removesuffix(".py")


async def costs(turns: int, tokens: int) -> dict[str, Any]:
    """CPU per turn (start to end, one-token reply) and per streamed token."""
    return {
        "turn": await _measure(_turns, turns),
        "token": await _measure(_tokens, tokens),
    }
