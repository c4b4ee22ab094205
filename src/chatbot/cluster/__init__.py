"""Cluster mode (REDIS_URL): many workers, any of which answers for any session.

Each live session is held by one worker at a time (`leases`): it runs the session's
turn and is its only writer. Its events go to a Redis Stream and a pub/sub channel
(`outbox`); other workers stream them to their clients from a `mirror`. Operations
that arrive at another worker are sent to the holder (`rpc`). When a holder dies, its
leases expire and the next worker to need a session (or the failover sweep, for a
running turn) takes it over from the database and the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import Any

import orjson

from chatbot.cluster.bus import Bus
from chatbot.cluster.keys import Keys
from chatbot.cluster.leases import Leases
from chatbot.cluster.link import Link
from chatbot.cluster.mirror import Mirrors, split_frames
from chatbot.cluster.outbox import Outbox, SharedLog
from chatbot.cluster.quotas import StreamCounts
from chatbot.cluster.rpc import NotHolder, Rpc, WorkerGone
from chatbot.config import Settings
from chatbot.errors import BackendUnavailable, ChatbotError, SessionNotFound
from chatbot.metrics import ClusterGauges
from chatbot.model import Message, MessageStatus, new_session_id, redact, scoped
from chatbot.sessions.events import EventLog, Subscriber
from chatbot.sessions.manager import SessionManager, Stage
from chatbot.sessions.service import OPERATIONS, Answer, Args
from chatbot.sessions.session import Session
from chatbot.timers import every

__all__ = ["Cluster"]

log = logging.getLogger("chatbot.cluster")
ROUTE_ATTEMPTS = 6
SYNC_SECONDS = 2.0
"""How long a state asked for by a mirror waits for the outbox (Redis may be away)."""
READS = frozenset({"state", "page"})
"""Operations a worker answers from a session it holds without asking Redis first."""


class Cluster:
    """This worker's membership in a cluster: what the registry calls `peers`."""

    def __init__(self, settings: Settings, manager: SessionManager) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.manager = manager
        self.me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.keys = Keys(settings.redis_prefix)
        self.link = Link(settings.redis_url.get_secret_value())
        self.leases = Leases(self.link, self.keys, self.me, settings.turn_lease_seconds)
        lease_ms = int(settings.turn_lease_seconds * 1000)
        self.outbox = Outbox(
            self.link,
            self.keys,
            self.me,
            buffer=settings.event_buffer_size,
            events_ttl_ms=int(
                (settings.session_timeout_seconds + settings.cleanup_interval_seconds) * 1000
            ),
            lease_ms=lease_ms,
            on_lost=manager.drop,
        )
        self.rpc = Rpc(self.link, self.keys, self.me, self._serve, settings.turn_lease_seconds)
        self.mirrors = Mirrors(
            empty_state=self._empty_state,
            holder_state=self._holder_state,
            replay=self.replay,
            subscribe=self._follow,
            unsubscribe=self._unfollow,
            legacy_interval_ms=settings.legacy_stream_min_interval_ms,
            sent=manager.events_sent,
            capacity=settings.event_buffer_size,
            snapshot_messages=settings.snapshot_messages,
        )
        self.bus = Bus(
            self.link,
            self.keys,
            self.keys.inbox(self.me),
            on_message=self.rpc.received,
            on_frames=self.mirrors.ingest,
            on_reconnect=self.mirrors.resync_all,
        )
        self.streams = StreamCounts(self.link, self.keys, self.me, settings.turn_lease_seconds)
        self.sessions = ClusterSessions(self)
        self._timers: list[asyncio.Task[None]] = []
        self._adopting: dict[str, tuple[asyncio.Lock, int]] = {}
        manager.join(self)

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, listen to this worker's inbox, and start renewing and watching."""
        try:
            await self.link.ping()
            await self.bus.start()
        except Exception as error:
            raise RuntimeError(f"cannot reach Redis: {error}") from None
        self.outbox.start()
        await self._renew()  # the first report: the cluster counts this worker at once
        lease = self.settings.turn_lease_seconds
        self._timers = [
            every(lease / 3, self._renew, "cluster-renew"),
            every(min(1.0, lease / 4), self._recover_orphans, "cluster-failover"),
        ]
        log.info("joined the cluster", extra={"worker_token": self.me})

    async def stop(self) -> None:
        """Ship what is queued and disconnect (the registry handed its sessions over)."""
        for timer in self._timers:
            timer.cancel()
        await self.outbox.stop()
        await self.bus.stop()
        await self.link.close()

    async def _renew(self) -> None:
        report = {**self.manager.counts(), "at": time.time()}
        await self.link.call(
            self.link.redis.hset(self.keys.workers, self.me, orjson.dumps(report).decode())
        )
        held = list(self.manager.held_ids())
        running = [sid for sid in held if self.manager.running(sid)]
        lost = await self.leases.renew(held, running)
        await self.streams.renew(self.manager.owned_streams())
        for session_id in lost:
            self.manager.drop(session_id)
        if lost:
            log.warning("sessions taken over by other workers", extra={"count": len(lost)})

    async def _recover_orphans(self) -> None:
        for session_id in await self.leases.orphaned_turns():
            if self.manager.held(session_id) is not None:
                continue
            if await self.leases.holder(session_id) is None:
                log.info("taking over a turn", extra={"session": redact(session_id)})
                try:
                    if await self.adopt(session_id, create=False) is None:
                        await self.leases.forget_turn(session_id)
                except NotHolder:
                    pass  # another worker was quicker

    async def update_gauges(self, gauges: ClusterGauges) -> None:
        """Sum every live worker's last report into the cluster gauges (at scrape time)."""
        reports = await self.link.call(self.link.redis.hgetall(self.keys.workers))
        horizon = time.time() - 3 * self.settings.turn_lease_seconds
        fresh: list[dict[str, float]] = []
        stale: list[bytes] = []
        for worker, raw in reports.items():
            report = orjson.loads(raw)
            if report["at"] >= horizon:
                fresh.append(report)
            else:
                stale.append(worker)
        if stale:
            await self.link.call(self.link.redis.hdel(self.keys.workers, *map(bytes.decode, stale)))
        gauges.workers.set(len(fresh))
        gauges.sessions.set(sum(report["sessions"] for report in fresh))
        gauges.streams.set(sum(report["streams"] for report in fresh))
        gauges.turns.set(sum(report["turns"] for report in fresh))
        gauges.queued.set(sum(report["queued"] for report in fresh))

    # ---- holding sessions ------------------------------------------------------------

    async def adopt(self, session_id: str, *, create: bool) -> Session | None:
        """Hold the session here: take its lease if nobody has it, load it, and finish a
        turn its last holder left running.

        Returns None (and gives the lease back) when there is no such session to load;
        raises `NotHolder` when another worker holds it. One adoption per session at a
        time: a stream and a write arriving together must not both load it.
        """
        waiting = self._adopting.get(session_id)
        lock = waiting[0] if waiting is not None else asyncio.Lock()
        self._adopting[session_id] = (lock, (waiting[1] if waiting else 0) + 1)
        try:
            async with lock:
                return await self._adopt(session_id, create=create)
        finally:
            _, count = self._adopting[session_id]
            if count == 1:
                del self._adopting[session_id]
            else:
                self._adopting[session_id] = (lock, count - 1)

    async def _adopt(self, session_id: str, *, create: bool) -> Session | None:
        manager = self.manager
        session = manager.held(session_id)
        if session is not None:
            return session
        holder = await self.leases.holder(session_id)
        if holder != self.me and not (holder is None and await self.leases.acquire(session_id)):
            raise NotHolder()
        try:
            seq = await self.last_seq(session_id)
            orphaned = await self.leases.turn_was_running(session_id)
            shown: dict[str, dict[str, Any]] = {}
            if orphaned:
                # The dead holder's streams may have shown events it never shipped: skip
                # past any number they could have used, so none is given twice. A client
                # resuming from one of them gets a snapshot, never someone else's event.
                seq += self.settings.event_buffer_size
                shown = await self._shown_texts(session_id)
            if create:
                session = await manager.get_or_create(session_id, seq)
            else:
                session = await manager.find(session_id, seq)
        except BaseException:
            await self.leases.release([session_id])
            raise
        if session is None:
            await self.leases.release([session_id])
            return None
        if orphaned and not session.turns.running:
            # No await from loading to here: the streams that moved over see the takeover.
            _restore_shown(session, shown)
            session.take_over_turn(resume=self.settings.recover_turns)
            if not session.turns.running:
                self.outbox.turn(session_id, False)
        return session

    async def _shown_texts(self, session_id: str) -> dict[str, dict[str, Any]]:
        """Each text message as the streams showed it, from the session's Redis Stream: a
        reply cut off by a dead worker is in the database only as of its last save, or not
        at all when it began just before the worker died."""
        entries = await self.link.call(self.link.redis.xrange(self.keys.events(session_id)))
        shown: dict[str, dict[str, Any]] = {}
        for _, fields in entries:
            for _seq, event_type, data, _frame in split_frames(fields[b"f"]):
                if event_type == "message.created":
                    message = orjson.loads(data)["message"]
                    shown[message["id"]] = message
                elif event_type == "message.delta":
                    delta = orjson.loads(data)
                    if delta["id"] in shown:
                        shown[delta["id"]]["content"] += delta["delta"]
        return shown

    async def last_seq(self, session_id: str) -> int:
        """The seq of the session's newest event in the cluster (0 when it has none)."""
        redis = self.link.redis
        newest = await self.link.call(redis.xrevrange(self.keys.events(session_id), count=1))
        return int(newest[0][0].split(b"-")[0]) if newest else 0

    async def replay(self, session_id: str, last_seq: int) -> list[bytes] | None:
        """The frames after `last_seq` from the session's stream, or None if trimmed away."""
        redis = self.link.redis
        entries = await self.link.call(
            redis.xrange(self.keys.events(session_id), min=f"{last_seq + 1}-0")
        )
        if entries and int(entries[-1][0].split(b"-")[0]) != last_seq + len(entries):
            return None  # trimmed, or a takeover skipped numbers: not an exact replay
        return [fields[b"f"] for _, fields in entries]

    # ---- what the registry asks (manager.Peers) --------------------------------------

    def check(self) -> None:
        """Refuse writes while Redis is away."""
        self.link.check()

    def event_log(self, session_id: str, seq: int) -> EventLog:
        """A held session's log: kept here and shipped to Redis."""
        return SharedLog(session_id, self.settings.event_buffer_size, seq, self.outbox)

    async def stream_target(self, session_id: str) -> Stage:
        """The session if this worker holds (or can take) it, else a mirror of it."""
        session = self.manager.held(session_id)
        if session is not None:
            return session
        holder = await self.leases.holder(session_id)
        if holder is None or holder == self.me:
            with contextlib.suppress(NotHolder):
                session = await self.adopt(session_id, create=False)
            if session is not None:
                return session
        return await self.mirrors.follow(session_id)

    def stream_closed(self, subscriber: Subscriber) -> None:
        """A stream on a mirror ended."""
        self.mirrors.closed(subscriber)

    async def count_stream(self, owner: str, subscriber: Subscriber, limit: int) -> bool:
        """Count the principal's new stream in Redis; False when it has `limit` already."""
        return await self.streams.count(subscriber, limit)

    def uncount_stream(self, subscriber: Subscriber) -> None:
        """A counted stream ended."""
        self.streams.drop(subscriber)

    def registered(self, session: Session) -> None:
        """This worker holds `session` now: the streams of its mirror move over."""
        mirror = self.mirrors.take(session.id)
        if mirror is None:
            return
        for subscriber in mirror.audience.take():
            session.attach(subscriber)
        if mirror.log.seq != session.log.seq:
            session.audience.start_over()
        else:
            session.audience.push_state()

    def turn_started(self, session_id: str) -> None:
        """Mark the turn as running, for failover."""
        self.outbox.turn(session_id, True)

    def turn_ended(self, session_id: str) -> None:
        """The turn is over: nothing to recover (unless this worker let the session go)."""
        if self.manager.held(session_id) is not None:
            self.outbox.turn(session_id, False)

    async def released(self, sessions: list[str]) -> None:
        """Sessions left this worker: what they wrote goes out first, then their leases."""
        await self.outbox.drain()
        await self.leases.release(sessions)

    async def handed_over(self, sessions: list[str], running: list[str]) -> None:
        """This worker stops: free its leases and offer its turns to the others at once."""
        with contextlib.suppress(ChatbotError):  # Redis is away: the leases expire anyway
            await self.outbox.drain()
            await self.leases.orphan(running)
            await self.leases.release(sessions)
        if sessions:
            log.info("sessions handed over", extra={"count": len(sessions), "turns": len(running)})

    # ---- mirrors' needs --------------------------------------------------------------

    def _empty_state(self, session_id: str) -> dict[str, Any]:
        return self.manager.placeholder(session_id).state()

    async def _holder_state(self, session_id: str) -> dict[str, Any] | None:
        holder = await self.leases.holder(session_id)
        if holder is None or holder == self.me:
            return None
        request = {"sid": session_id, "op": "state", "args": {}, "create": False, "sync": True}
        try:
            return await self.rpc.call(holder, request)
        except (NotHolder, WorkerGone, SessionNotFound):
            return None

    async def _follow(self, session_id: str) -> None:
        await self.bus.follow(session_id)

    async def _unfollow(self, session_id: str) -> None:
        await self.bus.unfollow(session_id)

    # ---- serving other workers -------------------------------------------------------

    async def _serve(self, request: dict[str, Any]) -> Answer:
        session_id: str = request["sid"]
        op: str = request["op"]
        # Asked as the lease holder: this worker may still be loading the session.
        if await self.adopt(session_id, create=request["create"] and op != "delete") is None:
            raise SessionNotFound(f"No session with id {redact(session_id)!s}.")
        answer = await self.sessions.here(session_id, op, request["args"])
        if request.get("sync"):
            # A mirror starts from this state and finds anything older in the session's
            # Redis Stream (a stream resuming there): ship what the outbox still holds, so
            # the Stream has every event up to the state's seq when the mirror reads it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.drain(), SYNC_SECONDS)
        return answer


def _restore_shown(session: Session, shown: dict[str, dict[str, Any]]) -> None:
    """Give a session taken over from a dead worker every reply its streams showed: the
    text the database missed, and a reply the database never got (it is closed as
    interrupted with the rest of the cut turn)."""
    held = {message.id: message for message in session.messages}
    for message_id, fields in shown.items():
        message = held.get(message_id)
        text = fields["content"]
        if message is None and fields["sender"] == "agent" and fields.get("tool") is None:
            session.add_message(
                Message(
                    id=message_id,
                    sender="agent",
                    content=text,
                    timestamp=fields["timestamp"],
                    is_streaming=True,
                    status=MessageStatus.STREAMING,
                )
            )
        elif message is not None and message.is_streaming and len(text) > len(message.content):
            message.content = text


class ClusterSessions:
    """Runs each operation on the worker holding the session: here, or by asking it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def run(
        self, session_id: str | None, op: str, args: Args, *, create: bool, scope: str = ""
    ) -> Answer:
        """Run `op` where the session is held; take the session when nobody holds it."""
        cluster = self.cluster
        manager = cluster.manager
        if session_id is None:
            # A fresh UUIDv4: nobody holds it and the database cannot have it.
            session_id = scoped(new_session_id(), scope)
            await manager.check_quota(session_id)
            if await cluster.leases.acquire(session_id):
                manager.create(session_id)
        for _ in range(ROUTE_ATTEMPTS):
            if op in READS and manager.held(session_id) is not None:
                return await self.here(session_id, op, args)
            # A write checks the lease first (one round trip): with Redis away it is a 503,
            # and a worker that lost the session (it stalled) learns so before writing.
            holder = await cluster.leases.holder(session_id)
            if manager.held(session_id) is not None:
                if holder == cluster.me or (
                    # Gone with a Redis that restarted empty: still this worker's to take.
                    holder is None and await cluster.leases.acquire(session_id)
                ):
                    return await self.here(session_id, op, args)
                # Held here, yet another worker holds the lease: it took over while this
                # one stalled. Nothing more is written from here.
                manager.drop(session_id)
                continue
            if op == "release" and holder != cluster.me:
                if holder is None:
                    return {}  # in nobody's memory: nothing to release
            elif holder is None or holder == cluster.me:
                try:
                    adopted = await cluster.adopt(session_id, create=create and op != "delete")
                except NotHolder:
                    continue  # another worker took it just now: ask that one
                if adopted is None:
                    raise SessionNotFound(f"No session with id {redact(session_id)!s}.")
                return await self.here(session_id, op, args)
            request = {"sid": session_id, "op": op, "args": args, "create": create}
            try:
                return await cluster.rpc.call(holder, request)
            except NotHolder:
                continue
            except WorkerGone:
                await cluster.leases.steal(session_id, holder)
        raise BackendUnavailable("The session is moving between workers; try again.", retry_after=1)

    async def here(self, session_id: str, op: str, args: Args) -> Answer:
        """Run `op` on a session this worker holds."""
        manager = self.cluster.manager
        if op == "release":
            await manager.release(session_id)
            return {}
        if op == "delete":
            await manager.remove(session_id)
            await self.cluster.leases.forget_turn(session_id)
            await self.cluster.link.call(
                self.cluster.link.redis.delete(self.cluster.keys.events(session_id))
            )
            return {}
        session = manager.held(session_id)
        if session is None:
            raise NotHolder()
        return await OPERATIONS[op](session, args)

    async def running_turns(self, session_id: str) -> int:
        """The owner's other turns running on any worker, from Redis."""
        return await self.cluster.leases.running_turns(session_id)

    async def processing(self, session_ids: list[str]) -> set[str]:
        """Which of these sessions run a turn on any worker, from Redis."""
        return await self.cluster.leases.running(session_ids)
