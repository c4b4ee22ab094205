"""What the routes ask of sessions, as named operations with plain-data arguments and answers.

An operation runs on the worker that holds the session. In one process that is always
this one (`LocalSessions`); in a cluster, `chatbot.cluster.ClusterSessions` runs it here
when this worker holds the session and sends it to the holder otherwise. Arguments and
answers are JSON-ready for that reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from chatbot.errors import MessageNotFound
from chatbot.model import WalletStatus
from chatbot.sessions.commands import parse_command
from chatbot.sessions.manager import SessionManager
from chatbot.sessions.session import Session

Args = dict[str, Any]
Answer = dict[str, Any]


class Sessions(Protocol):
    """Runs an operation on a session wherever it is held."""

    async def run(self, session_id: str | None, op: str, args: Args, *, create: bool) -> Answer:
        """Run `op` on the session; `create` makes it on first use (a new id when None)."""


async def _chat(session: Session, args: Args) -> Answer:
    await session.submit_chat(args["text"])
    return session.state()


async def _system(session: Session, args: Args) -> Answer:
    session.submit_system(args["text"])
    return session.state()


async def _state(session: Session, args: Args) -> Answer:
    return session.state()


async def _interrupt(session: Session, args: Args) -> Answer:
    await session.interrupt()
    return session.state()


async def _wallet_result(session: Session, args: Args) -> Answer:
    session.resolve_wallet_tx(
        args["tx_id"], WalletStatus(args["status"]), args.get("hash"), args.get("error")
    )
    return session.state()


async def _command(session: Session, args: Args) -> Answer:
    command = parse_command(args["command"], args.get("args"), session.env.settings)
    result = command(session)
    return {
        "success": result.success,
        "message": result.message,
        "data": result.data,
        "session_id": session.id,
    }


async def _page(session: Session, args: Args) -> Answer:
    page = await session.env.store.page(session.id, args.get("before"), args["limit"])
    if page is None:
        raise MessageNotFound(f"No message {args.get('before')!r} in this session.")
    return {"messages": page.messages, "has_more": page.has_more}


OPERATIONS: dict[str, Callable[[Session, Args], Awaitable[Answer]]] = {
    "chat": _chat,
    "system": _system,
    "state": _state,
    "interrupt": _interrupt,
    "wallet_result": _wallet_result,
    "command": _command,
    "page": _page,
}
"""Every operation by name; `delete` is the registry's, not a session's."""


class LocalSessions:
    """Every session is held by this process."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    async def run(self, session_id: str | None, op: str, args: Args, *, create: bool) -> Answer:
        """Run `op` on the session in this process's registry."""
        manager = self.manager
        if op == "delete":
            assert session_id is not None
            await manager.remove(session_id)
            return {}
        if session_id is None:
            session = manager.create()
        elif create:
            session = await manager.get_or_create(session_id)
        else:
            session = await manager.require(session_id)
        return await OPERATIONS[op](session, args)
