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
from chatbot.model import WalletAccount, WalletStatus, new_session_id, public_id, scope_in, scoped
from chatbot.sessions.commands import parse_command
from chatbot.sessions.manager import SessionManager
from chatbot.sessions.session import Session
from chatbot.store.base import Store

Args = dict[str, Any]
Answer = dict[str, Any]


class Sessions(Protocol):
    """Runs an operation on a session wherever it is held."""

    async def run(
        self, session_id: str | None, op: str, args: Args, *, create: bool, scope: str = ""
    ) -> Answer:
        """Run `op` on the session; `create` makes it on first use.

        With no id, a new session gets a fresh UUIDv4 under the principal's `scope`.
        """

    async def running_turns(self, session_id: str) -> int:
        """How many turns of the owner's other sessions run now (0 for an unowned one)."""

    async def processing(self, session_ids: list[str]) -> set[str]:
        """Which of these sessions run a turn now."""


def _adopt_signer(session: Session, args: Args) -> None:
    """A message signed in with Ethereum brings its address, the wallet until one is reported."""
    if args.get("signer"):
        session.adopt_signer(args["signer"])


async def _chat(session: Session, args: Args) -> Answer:
    _adopt_signer(session, args)
    await session.submit_chat(args["text"])
    return session.state()


async def _system(session: Session, args: Args) -> Answer:
    _adopt_signer(session, args)
    session.submit_system(args["text"])
    return session.state()


async def _wallet_account(session: Session, args: Args) -> Answer:
    address = args.get("address") or args.get("signer")
    chain_id = args.get("chain_id") if args.get("address") else None
    session.set_account(None if address is None else WalletAccount(address, chain_id))
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


async def run_command(session: Session, args: Args) -> Answer:
    """Apply a session command (`POST /api/mcp-command`); its original answer."""
    command = parse_command(args["command"], args.get("args"), session.env.settings)
    result = command(session)
    return {
        "success": result.success,
        "message": result.message,
        "data": result.data,
        "session_id": public_id(session.id),
    }


async def _rename(session: Session, args: Args) -> Answer:
    session.rename(args["title"])
    return session.state()


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
    "wallet_account": _wallet_account,
    "command": run_command,
    "page": _page,
    "rename": _rename,
}
"""Every operation by name; `delete` and `release` are the registry's, not a session's."""


class LocalSessions:
    """Every session is held by this process."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    async def run(
        self, session_id: str | None, op: str, args: Args, *, create: bool, scope: str = ""
    ) -> Answer:
        """Run `op` on the session in this process's registry."""
        manager = self.manager
        if op == "delete":
            assert session_id is not None
            await manager.remove(session_id)
            return {}
        if op == "release":
            assert session_id is not None
            await manager.release(session_id)
            return {}
        if session_id is None:
            session_id = scoped(new_session_id(), scope)
            await manager.check_quota(session_id)
            session = manager.create(session_id)
        elif create:
            session = await manager.get_or_create(session_id)
        else:
            session = await manager.require(session_id)
        return await OPERATIONS[op](session, args)

    async def processing(self, session_ids: list[str]) -> set[str]:
        """Which of these sessions run a turn in this process."""
        return {session_id for session_id in session_ids if self.manager.running(session_id)}

    async def running_turns(self, session_id: str) -> int:
        """Every turn runs in this process."""
        scope = scope_in(session_id)
        if not scope:
            return 0
        return self.manager.running_turns(scope) - self.manager.running(session_id)


async def claim(sessions: Sessions, store: Store, source: str, target: str) -> list[str]:
    """Move every session of scope `source` to scope `target` (an anonymous browser that
    signs in); returns the moved sessions' ids.

    Each one leaves memory first, wherever it is held (its streams get `session.closed`,
    a running turn stops), so that it is re-keyed only on disk and loads under its new key.
    """
    for key in await store.owned_ids(source):
        await sessions.run(key, "release", {}, create=False)
    return [public_id(key) for key in await store.move_owned(source, target)]
