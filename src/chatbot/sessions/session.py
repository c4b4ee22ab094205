"""One user's session: conversation, flags, network, event log, subscribers, and its turn.

Every change goes through `_emit`, which numbers the event, serializes it once and
hands the same bytes to every subscriber. Turns run on the session's turn machine
(sessions/turns.py), one asyncio task at a time, so output keeps flowing whether or not
anyone is listening; the agent writes through the session's `Transcript` face.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chatbot.config import Settings
from chatbot.errors import WalletTxExpired, WalletTxPending
from chatbot.model import (
    Message,
    MessageStatus,
    Simulation,
    TokenCall,
    ToolCallInfo,
    ToolStatus,
    WalletAccount,
    WalletResolution,
    WalletStatus,
    WalletTx,
    iso_in,
    public_id,
    redact,
    utc_timestamp,
)
from chatbot.sessions.audience import Audience
from chatbot.sessions.events import EventLog, Subscriber, event_frame, state_frame
from chatbot.sessions.notes import resolution_from_text, wallet_network_from_text
from chatbot.sessions.ports import TurnRunner
from chatbot.sessions.titles import first_words
from chatbot.sessions.turns import INTERRUPTED_BY_USER, Turns
from chatbot.sessions.wallet import WalletSlot
from chatbot.store.base import Store, StoredSession

log = logging.getLogger("chatbot.sessions")


@dataclass(slots=True)
class ServerStatus:
    """Process-wide readiness that every session's state reports."""

    is_loading: bool = False
    is_connecting_mcp: bool = False
    missing_api_key: bool = False


class SessionHooks(Protocol):
    """What a session reports to its registry (metrics, activity)."""

    def events_sent(self, count: int) -> None:
        """`count` frames were handed to subscribers."""

    def turn_started(self, session_id: str) -> None:
        """A turn task of this session began."""

    def turn_ended(self, session_id: str) -> None:
        """A turn task of this session ended, however it ended."""


@dataclass(slots=True)
class SessionEnv:
    """What every session shares: settings, readiness, agent, store, the registry's hooks,
    and where its event log lives."""

    settings: Settings
    status: ServerStatus
    runner: TurnRunner
    hooks: SessionHooks
    store: Store
    event_log: Callable[[str, int], EventLog]
    """Makes the event log of the session with this id, its newest event numbered so."""


INTERRUPTED_BY_RESTART = "The server restarted while this reply was being written; it stops here."
RESUMED_AFTER_FAILOVER = (
    "The worker writing this reply stopped; another one picks up from the last finished step."
)


class Session:
    """State and turn control for one session id; all methods run on the event loop."""

    def __init__(
        self,
        session_id: str,
        env: SessionEnv,
        network: str,
        stored: StoredSession | None = None,
        seq: int = 0,
    ) -> None:
        self.id = session_id
        self.env = env
        self.network = stored.network if stored else network
        self.wallet = WalletSlot()
        self.messages: list[Message] = stored.messages if stored else []
        # Messages before these are on disk only; `base` is the position of messages[0].
        self.base = stored.older_messages if stored else 0
        self.created_at = stored.created_at if stored else utc_timestamp()
        self.title = stored.title if stored else None
        self.account: WalletAccount | None = stored.wallet if stored else None
        self.log = env.event_log(session_id, seq)
        self.audience = Audience(
            self.snapshot_frame,
            self.legacy_frame,
            env.settings.legacy_stream_min_interval_ms,
            env.hooks.events_sent,
        )
        self.last_active = time.monotonic()
        self.closed = False
        # Set when another worker has taken this session over: nothing more may be written.
        self.fenced = False
        self.turns = Turns(self, env.runner, env.settings)
        self._open: list[Message] = []
        # The first-words title, while the model may still replace it (LLM_TITLES).
        self._words_title: str | None = None
        self._titling: asyncio.Task[None] | None = None
        self._legacy_cache: tuple[int, bytes] | None = None
        self._stream_saved_at = 0.0
        if stored is not None:
            self.wallet.pending = stored.pending_wallet_tx
            self.wallet.resolved.update(stored.resolved_wallet_txs)

    # ---- durability ----------------------------------------------------------------

    def save(self) -> None:
        """Queue this session's own row (network, title, activity) for the store."""
        if self.fenced:
            return
        self.env.store.save_session(
            self.id,
            network=self.network,
            title=self.title,
            created_at=self.created_at,
            last_active_at=utc_timestamp(),
            wallet=self.account,
        )

    def _save(self, message: Message) -> None:
        if self.fenced:
            return
        # Messages being saved are almost always the newest: search from the end.
        index = next(
            i for i in range(len(self.messages) - 1, -1, -1) if self.messages[i] is message
        )
        self.env.store.save_message(self.id, self.base + index, message)

    def recover_cut_turn(self) -> None:
        """A reply still "streaming" on disk was cut off by a crash: say so, once."""
        if self._close_cut():
            self.add_system_message(INTERRUPTED_BY_RESTART)

    def _close_cut(self) -> bool:
        cut = [message for message in self.messages if message.is_streaming]
        for message in cut:
            if message.tool is not None:
                message.tool.interrupt()
            message.is_streaming = False
            message.status = MessageStatus.INTERRUPTED
            self._save(message)
        return bool(cut)

    def take_over_turn(self, *, resume: bool) -> None:
        """Another worker died running this session's turn: close what it left open,
        resync every stream, and (with `resume`) let the agent go on from its last
        finished step. The history holds every finished tool round trip, so none repeats.
        """
        self._close_cut()
        self._emit("snapshot", {**self.state(), "seq": self.log.seq + 1})
        if resume:
            self.turns.follow_up(self.add_system_message(RESUMED_AFTER_FAILOVER))
        else:
            self.add_system_message(INTERRUPTED_BY_RESTART)

    def _trim_memory(self) -> None:
        """Keep at most twice SNAPSHOT_MESSAGES in memory; older ones stay on disk."""
        keep = self.env.settings.snapshot_messages
        if len(self.messages) > 2 * keep and not self._open:
            dropped = len(self.messages) - keep
            del self.messages[:dropped]
            self.base += dropped

    # ---- reading -------------------------------------------------------------------

    @property
    def is_processing(self) -> bool:
        """True from the start of a turn until its task has ended."""
        return self.turns.running

    @property
    def is_idle(self) -> bool:
        """No running turn and nobody listening: the expiry sweep may evict it."""
        return not self.turns.running and not self.audience

    def flags(self) -> dict[str, Any]:
        """The non-message part of the state, as sent in `state` events."""
        status = self.env.status
        pending = self.wallet.pending
        return {
            "is_processing": self.is_processing,
            "is_loading": status.is_loading,
            "is_connecting_mcp": status.is_connecting_mcp,
            "missing_api_key": status.missing_api_key,
            "network": self.network,
            "title": self.title,
            "wallet_address": self.account.address if self.account else None,
            "wallet_chain_id": self.account.chain_id if self.account else None,
            "pending_wallet_tx": pending.original_json() if pending else None,
            "wallet_tx": pending.public() if pending else None,
            "queued": self.turns.queued,
        }

    def state(self) -> dict[str, Any]:
        """The `WebStateResponse`: the newest SNAPSHOT_MESSAGES, and how many came before."""
        shown = self.messages[-self.env.settings.snapshot_messages :]
        return {
            "session_id": public_id(self.id),
            "seq": self.log.seq,
            "messages": shown,
            "older_messages": self.base + len(self.messages) - len(shown),
            **self.flags(),
        }

    def snapshot_frame(self) -> bytes:
        """A `snapshot` event carrying the full state, numbered with the current seq."""
        return event_frame(self.log.seq, "snapshot", self.state())

    def legacy_frame(self) -> bytes:
        """The full state as a legacy frame, serialized once per change for all listeners."""
        cache = self._legacy_cache
        if cache is None or cache[0] != self.log.seq:
            cache = (self.log.seq, state_frame(self.state()))
            self._legacy_cache = cache
        return cache[1]

    # ---- subscribers ---------------------------------------------------------------

    def attach(self, subscriber: Subscriber) -> None:
        """Start delivering this session's changes to `subscriber`."""
        self.audience.add(subscriber)

    def detach(self, subscriber: Subscriber) -> None:
        """Stop delivering to `subscriber`; the session may become idle."""
        self.audience.discard(subscriber)
        self.last_active = time.monotonic()

    # ---- changes -------------------------------------------------------------------

    def _emit(self, event_type: str, data: Any) -> None:
        if self.fenced:
            return
        _, frame = self.log.append(event_type, data)
        self.audience.publish(frame)

    def rename(self, title: str) -> None:
        """Give the conversation the title its owner chose."""
        self.title = title
        self._words_title = None
        self.save()
        self.emit_state()

    def emit_state(self) -> None:
        """Announce a change of flags, network or readiness."""
        self._emit("state", self.flags())

    def add_message(self, message: Message) -> Message:
        """Append a message and announce it."""
        self.messages.append(message)
        if message.is_streaming:
            self._open.append(message)
        if self.title is None and message.sender == "user":
            self.title = self._words_title = first_words(message.content)
        self.save()
        self._save(message)
        self._emit("tool.call" if message.tool else "message.created", {"message": message})
        self._trim_memory()
        return message

    def add_system_message(self, text: str) -> Message:
        """Show a system message at once."""
        return self.add_message(Message(sender="system", content=text))

    def start_agent_message(self) -> Message:
        """Open an agent message that text deltas will stream into."""
        return self.add_message(
            Message(sender="agent", content="", is_streaming=True, status=MessageStatus.STREAMING)
        )

    def append_text(self, message: Message, text: str) -> None:
        """Stream a piece of text into an open agent message."""
        message.content += text
        self._emit("message.delta", {"id": message.id, "delta": text})
        now = time.monotonic()
        if now - self._stream_saved_at >= self.env.settings.stream_save_interval_seconds:
            self._stream_saved_at = now
            self._save(message)  # a long reply is on disk as it grows, not only at its end

    def finish_message(self, message: Message, status: MessageStatus) -> None:
        """Close a streaming message with its final status."""
        if not message.is_streaming:
            return
        message.is_streaming = False
        message.status = status
        self._open.remove(message)
        self._save(message)
        self._emit("tool.result" if message.tool else "message.completed", {"message": message})

    def start_tool(self, call_id: str, name: str, args: dict[str, Any]) -> Message:
        """Show a tool call as its own message, running."""
        tool = ToolCallInfo(name=name, args=args, call_id=call_id)
        return self.add_message(
            Message(
                sender="agent",
                content="",
                is_streaming=True,
                status=MessageStatus.STREAMING,
                tool=tool,
            )
        )

    def finish_tool(
        self, message: Message, *, result: Any = None, error: str | None = None
    ) -> None:
        """Record a tool call's result or error."""
        assert message.tool is not None
        message.tool.status = ToolStatus.ERROR if error is not None else ToolStatus.SUCCESS
        message.tool.result = result
        message.tool.error = error
        message.is_streaming = False
        message.status = MessageStatus.ERROR if error is not None else MessageStatus.COMPLETE
        self._open.remove(message)
        self._save(message)
        self._emit("tool.result", {"message": message})

    def set_network(self, network: str) -> None:
        """Switch this session, and only this session, to another network."""
        if network != self.network:
            self.network = network
            self.save()
            self.emit_state()

    # ---- wallet --------------------------------------------------------------------

    def set_account(self, account: WalletAccount | None) -> None:
        """Remember the wallet the user's client reports (None: it disconnected)."""
        if account != self.account:
            self.account = account
            self.save()
            self.emit_state()

    def adopt_signer(self, address: str) -> None:
        """The signed-in address stands for the user's wallet until a client reports one."""
        if self.account is None:
            self.set_account(WalletAccount(address))

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
        """Ask the user's wallet to sign a transaction on this session's network."""
        if self.wallet.pending is not None:
            raise WalletTxPending(
                f"Transaction {self.wallet.pending.id} is still waiting for the user's wallet."
            )
        settings = self.env.settings
        timeout = settings.wallet_tx_timeout_seconds
        tx = WalletTx(
            to=to,
            value=value,
            data=data,
            chain_id=settings.networks[self.network].chain_id,
            network=self.network,
            description=description,
            expires_at=iso_in(timeout),
            deadline=time.monotonic() + timeout,
            simulation=simulation,
            token_call=token_call,
        )
        self.wallet.pending = tx
        self.env.store.save_wallet_tx(self.id, tx, None)
        self._emit("wallet.request", {"tx": tx.public()})
        self.emit_state()
        return tx

    def resolve_wallet_tx(
        self, tx_id: str, status: WalletStatus, hash: str | None, error: str | None
    ) -> WalletResolution:
        """Record the wallet's answer once, tell the agent, and let it continue."""
        pending = self.wallet.pending
        try:
            resolution = self.wallet.resolve(tx_id, status, hash, error)
        except WalletTxExpired:
            if pending is not None and pending.id == tx_id:  # it expired just now
                self._announce_resolution(pending, WalletResolution(tx_id, WalletStatus.EXPIRED))
            raise
        assert pending is not None
        self._announce_resolution(pending, resolution)
        return resolution

    def expire_wallet_tx(self) -> None:
        """Expire the pending transaction if its deadline passed (called by the sweep)."""
        pending = self.wallet.pending
        resolution = self.wallet.expire()
        if pending is not None and resolution is not None:
            self._announce_resolution(pending, resolution)

    def _announce_resolution(
        self, tx: WalletTx, resolution: WalletResolution, note: str | None = None
    ) -> Message:
        self.env.store.save_wallet_tx(self.id, tx, resolution.status)
        self._emit(
            "wallet.resolved",
            {
                "tx_id": resolution.tx_id,
                "status": resolution.status,
                "hash": resolution.hash,
                "error": resolution.error,
            },
        )
        message = self.add_system_message(note or resolution.note())
        self.turns.follow_up(message)  # the agent acts on the outcome
        return message

    # ---- turns ---------------------------------------------------------------------

    async def submit_chat(self, text: str) -> Message:
        """Add a user message and run the turn that answers it, or queue it."""
        self.last_active = time.monotonic()
        message = Message(sender="user", content=text)
        if await self.turns.submit(message):
            await self.env.store.flush()  # on disk before the request is answered
        return message

    def submit_system(self, text: str) -> Message:
        """Show a system note; it starts a turn only when the session is idle.

        The original app reported wallet outcomes ("Transaction sent: 0x…") and the
        wallet's network ("Dectected user's wallet connected to NAME network") this way:
        such a note also resolves the pending transaction or switches the network.
        """
        self.last_active = time.monotonic()
        text = self._apply_wallet_network(text)
        pending = self.wallet.pending
        parsed = resolution_from_text(text) if pending is not None else None
        if pending is not None and parsed is not None:
            try:
                resolution = self.wallet.resolve(pending.id, *parsed)
            except WalletTxExpired:
                expired = WalletResolution(pending.id, WalletStatus.EXPIRED)
                self._announce_resolution(pending, expired)
            else:
                return self._announce_resolution(pending, resolution, note=text)
        message = self.add_system_message(text)
        self.turns.start_if_idle(message)
        return message

    def _apply_wallet_network(self, text: str) -> str:
        """Follow the wallet to a configured network; otherwise tell the agent why not."""
        name = wallet_network_from_text(text)
        if name is None:
            return text
        if name in self.env.settings.networks:
            self.set_network(name)
            return text
        return (
            f"{text}\n(No network named '{name}' is configured on this server; "
            f"this session stays on '{self.network}'.)"
        )

    async def interrupt(self, note: str = INTERRUPTED_BY_USER) -> None:
        """Cancel the running turn and wait until it has ended; harmless when idle."""
        await self.turns.interrupt(note)

    async def close(self, reason: str) -> None:
        """End the session: stop its turn, tell its streams, and let them finish."""
        if self.closed:
            return
        await self.turns.close()
        if self._titling is not None:
            self._titling.cancel()
        self.closed = True
        self._emit("session.closed", {"reason": reason})
        self.audience.close()

    def fence(self) -> None:
        """Another worker holds this session now: stop its turn without writing a thing,
        and end this worker's streams so that they reconnect to the session's new holder."""
        self.fenced = True
        self.closed = True
        if self._titling is not None:
            self._titling.cancel()
        self.turns.abandon()
        self.audience.end()

    # ---- what the turn machine asks of its session -----------------------------------

    def close_open(self, status: MessageStatus) -> None:
        """Finish every message still streaming (a running tool call is interrupted)."""
        for message in list(self._open):
            if message.tool is not None:
                message.tool.interrupt()
            self.finish_message(message, status)

    async def checkpoint(self) -> None:
        """Make what the turn wrote so far durable (after each finished tool round trip),
        so a worker that takes over never repeats it."""
        await self.env.store.flush()

    def turn_started(self) -> None:
        """A turn task began."""
        self.env.hooks.turn_started(self.id)

    def turn_ended(self) -> None:
        """A turn task ended: the session is active until now. After the first reply, the
        model may name the conversation, off the turn's path (LLM_TITLES)."""
        self.last_active = time.monotonic()
        self.env.hooks.turn_ended(self.id)
        words = self._words_title
        if words is not None and self.title == words and self.env.runner.writes_titles:
            self._words_title = None  # asked once, whatever comes of it
            self._titling = asyncio.create_task(self._model_title(words), name="title")

    async def _model_title(self, words: str) -> None:
        exchange = [m for m in self.messages if m.tool is None and m.sender != "system"][:2]
        if len(exchange) < 2:
            return
        try:
            title = await self.env.runner.title(exchange)
        except Exception:
            log.warning("title failed", extra={"session": redact(self.id)}, exc_info=True)
            return
        # Renamed (or closed) meanwhile: the owner's choice stands.
        if title and self.title == words and not self.closed:
            self.title = title
            self.save()
            self.emit_state()
