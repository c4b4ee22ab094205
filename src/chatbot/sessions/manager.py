"""The registry of live sessions: lookup, creation, removal, limits, expiry, streams.

Reads never create a session. A stream opened on an id that does not exist yet waits
in `_waiting` and is attached when a write creates that session, so nothing is
allocated per unknown id beyond the stream itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from chatbot.collector import collect_old
from chatbot.config import Settings
from chatbot.errors import (
    BackendUnavailable,
    RateLimited,
    SessionNotFound,
    TooManySessions,
    TooManyStreams,
)
from chatbot.metrics import Metrics
from chatbot.model import new_session_id, redact, scope_in
from chatbot.sessions.audience import Audience
from chatbot.sessions.events import EventLog, MemoryEventLog, StreamKind, Subscriber
from chatbot.sessions.ports import TurnRunner
from chatbot.sessions.session import ServerStatus, Session, SessionEnv
from chatbot.store.base import Store
from chatbot.timers import every

log = logging.getLogger("chatbot.sessions")
KEEPALIVE_WALKS = 4  # walks per SSE_KEEPALIVE_SECONDS: silences last 0.75-1 of it


class Stage(Protocol):
    """What a stream follows: a session held here, or a cluster mirror of one held elsewhere."""

    @property
    def log(self) -> EventLog:
        """The numbered events this worker keeps for resuming."""

    @property
    def audience(self) -> Audience:
        """The streams open on it here."""

    def attach(self, subscriber: Subscriber) -> None:
        """Start delivering changes to `subscriber`."""

    def detach(self, subscriber: Subscriber) -> None:
        """Stop delivering to `subscriber`."""

    def snapshot_frame(self) -> bytes:
        """A `snapshot` event carrying the full state."""

    def legacy_frame(self) -> bytes:
        """The full state as a legacy frame."""


class Peers(Protocol):
    """The other workers of a cluster, as the registry sees them (None in one process)."""

    def check(self) -> None:
        """Raise `BackendUnavailable` while the cluster's shared state is unreachable."""

    def event_log(self, session_id: str, seq: int) -> EventLog:
        """The log of a session this worker holds, shared with the cluster."""

    async def stream_target(self, session_id: str) -> Stage:
        """Where a stream on this id attaches: the session (held here) or a mirror."""

    async def replay(self, session_id: str, last_seq: int) -> list[bytes] | None:
        """The cluster-wide frames after `last_seq`, or None when they are gone."""

    def stream_closed(self, subscriber: Subscriber) -> None:
        """A stream attached to a mirror has ended."""

    async def count_stream(self, owner: str, subscriber: Subscriber, limit: int) -> bool:
        """Count a principal's new stream cluster-wide; False when it has `limit` already."""

    def uncount_stream(self, subscriber: Subscriber) -> None:
        """A counted stream ended (its count is dropped in the background)."""

    def registered(self, session: Session) -> None:
        """This worker now holds `session` (its mirror's streams move over)."""

    def turn_started(self, session_id: str) -> None:
        """A turn began on a session held here."""

    def turn_ended(self, session_id: str) -> None:
        """A turn ended on a session held here."""

    async def released(self, sessions: list[str]) -> None:
        """These sessions left this worker's memory (evicted or deleted)."""

    async def handed_over(self, sessions: list[str], running: list[str]) -> None:
        """This worker stops: others take these sessions, and these turns, over now."""


class SessionManager:
    """Owns every in-memory session and every open stream of one process."""

    def __init__(
        self, settings: Settings, runner: TurnRunner, metrics: Metrics, store: Store
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.status = ServerStatus()
        self.peers: Peers | None = None
        capacity = settings.event_buffer_size
        self.env = SessionEnv(
            settings=settings,
            status=self.status,
            runner=runner,
            hooks=self,
            store=store,
            event_log=lambda _session_id, seq: MemoryEventLog(capacity, seq),
        )
        self._sessions: dict[str, Session] = {}
        self._loading: dict[str, asyncio.Future[Session | None]] = {}
        self._waiting: dict[str, set[Subscriber]] = {}
        self._streams: set[Subscriber] = set()
        # Per principal (scope, or the client's address under AUTH=none): open streams,
        # and per scope the turns running here.
        self._owned_streams: Counter[str] = Counter()
        self._scope_turns: Counter[str] = Counter()
        self._timers: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._sessions)

    def join(self, peers: Peers) -> None:
        """Become one worker of a cluster: session logs are shared through `peers`."""
        self.peers = peers
        self.env.event_log = peers.event_log

    def held(self, session_id: str) -> Session | None:
        """The session with this id if this worker has it in memory (never loads)."""
        return self._sessions.get(session_id)

    def held_ids(self) -> list[str]:
        """The ids of every session in this worker's memory."""
        return list(self._sessions)

    def running(self, session_id: str) -> bool:
        """True while a session held here runs a turn."""
        session = self._sessions.get(session_id)
        return session is not None and session.turns.running

    def counts(self) -> dict[str, int]:
        """What this worker holds: sessions, open streams, running turns, queued messages."""
        sessions = self._sessions.values()
        return {
            "sessions": len(self._sessions),
            "streams": len(self._streams),
            "turns": sum(1 for session in sessions if session.turns.running),
            "queued": sum(len(session.turns.queued) for session in sessions),
        }

    def running_turns(self, scope: str) -> int:
        """How many turns of a principal's sessions (by scope) run here."""
        return self._scope_turns[scope]

    async def check_quota(self, session_id: str) -> None:
        """Refuse a new session to a principal owning MAX_SESSIONS_PER_PRINCIPAL (429)."""
        scope = scope_in(session_id)
        limit = self.settings.max_sessions_per_principal
        if scope and await self.store.count_owned(scope) >= limit:
            self.metrics.rate_limited.labels("sessions").inc()
            raise RateLimited(
                f"You have {limit} conversations, the most one may keep; delete some first.",
                retry_after=60,
            )

    def placeholder(self, session_id: str) -> Session:
        """An empty, unregistered session: how an id nobody has used yet looks."""
        return Session(session_id, self.env, self.settings.initial_network)

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the two process-wide timers: the expiry sweep and the keep-alive walk."""
        self._timers = [
            every(self.settings.cleanup_interval_seconds, self.sweep, "sweep"),
            every(self._keepalive_walk_seconds, self._keepalive, "keepalive"),
        ]

    async def stop(self) -> None:
        """Stop the timers, end every turn and close every stream."""
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        if self.peers is not None:
            # In a cluster the sessions live on: other workers take them (and their turns)
            # over at once, and the streams here reconnect to them.
            held = list(self._sessions)
            running = [session_id for session_id in held if self.running(session_id)]
            for session_id in held:
                self.drop(session_id)
            await self.peers.handed_over(held, running)
        for session in list(self._sessions.values()):
            await session.close("server_shutdown")
        for waiting in self._waiting.values():
            for subscriber in waiting:
                subscriber.close()

    def end_streams(self) -> None:
        """Finish every open stream (on shutdown, so clients reconnect elsewhere at once)."""
        for subscriber in self._streams:
            subscriber.close()

    # ---- sessions ------------------------------------------------------------------

    async def find(self, session_id: str, seq: int = 0) -> Session | None:
        """The session with this id, from memory or loaded from the store; never creates.

        Concurrent finds of one id share one load (a future per id, no global lock).
        `seq` is the number its events continue from (a cluster's shared log).
        """
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        loading = self._loading.get(session_id)
        if loading is not None:
            return await asyncio.shield(loading)
        loading = asyncio.get_running_loop().create_future()
        self._loading[session_id] = loading
        try:
            stored = await self.store.load(session_id, self.settings.snapshot_messages)
            session = self._sessions.get(session_id)  # created while we were loading
            if session is None and stored is not None:
                session = Session(session_id, self.env, stored.network, stored, seq)
                self._register(session)
                if self.peers is None:  # in a cluster, the one taking a turn over decides
                    session.recover_cut_turn()
                log.info("session loaded", extra={"session": redact(session_id)})
            loading.set_result(session)
        except BaseException as error:
            loading.set_exception(error)
            loading.exception()  # retrieved: waiting finds re-raise it, nobody else must
            raise
        finally:
            del self._loading[session_id]
        return session

    async def require(self, session_id: str) -> Session:
        """The session with this id (loading it if stored), or `SessionNotFound`."""
        # A write may create the session while `find` awaits the store: look again, with
        # no await before the stream is attached or parked, so it cannot miss the session.
        session = await self.find(session_id) or self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"No session with id {redact(session_id)!s}.")
        return session

    async def get_or_create(self, session_id: str, seq: int = 0) -> Session:
        """The session with this id, loaded or created on first use.

        After the (shared) load, lookup and insertion happen with no await in between,
        so two concurrent creates of one id always yield the same session.
        """
        # A write may create the session while `find` awaits the store: look again, with
        # no await before the stream is attached or parked, so it cannot miss the session.
        session = await self.find(session_id, seq) or self._sessions.get(session_id)
        if session is not None:
            return session
        await self.check_quota(session_id)
        return self._sessions.get(session_id) or self._new(session_id, seq)

    def _new(self, session_id: str, seq: int = 0) -> Session:
        if len(self._sessions) >= self.settings.max_sessions:
            raise TooManySessions(
                "The server holds as many sessions as it may; try again later.",
                retry_after=self.settings.cleanup_interval_seconds,
            )
        session = Session(session_id, self.env, self.settings.initial_network, seq=seq)
        self._register(session)
        session.save()
        self.metrics.sessions_created.inc()
        log.info("session created", extra={"session": redact(session_id)})
        return session

    def _register(self, session: Session) -> None:
        self._sessions[session.id] = session
        for subscriber in self._waiting.pop(session.id, ()):
            session.attach(subscriber)
        if self.peers is not None:
            self.peers.registered(session)
        self.metrics.sessions_active.set(len(self._sessions))

    def create(self, session_id: str | None = None) -> Session:
        """A new session, by default with a server-made UUIDv4 id.

        A fresh UUIDv4 cannot be in the store, so it is not looked up there: that read
        was nine tenths of a create's cost (docs/BENCHMARKS.md).
        """
        return self._new(session_id or new_session_id())

    async def remove(self, session_id: str) -> None:
        """Delete a session and its stored history; its streams get `session.closed`."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self.metrics.sessions_active.set(len(self._sessions))
            await session.close("deleted")
        stored = await self.store.delete(session_id)
        if self.peers is not None:
            await self.peers.released([session_id])
        if session is None and not stored:
            raise SessionNotFound(f"No session with id {redact(session_id)!s}.")
        log.info("session removed", extra={"session": redact(session_id)})

    async def release(self, session_id: str) -> None:
        """Take a session out of memory to re-key it on disk (its owner signed in): its
        turn stops, its streams get `session.closed` with reason `moved`."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        self.metrics.sessions_active.set(len(self._sessions))
        await session.close("moved")
        await self.store.flush()
        if self.peers is not None:
            await self.peers.released([session_id])

    def drop(self, session_id: str) -> None:
        """Forget a session another worker takes over; it writes nothing more from here."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            session.fence()
            self.metrics.sessions_active.set(len(self._sessions))

    async def sweep(self) -> int:
        """Expire overdue wallet requests, evict idle sessions, delete old stored ones,
        collect garbage.

        Eviction only frees memory: an evicted session is loaded again on its next use.
        Returns how many sessions were evicted.
        """
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.history_retention_days)
        try:
            deleted = await self.store.delete_inactive_since(cutoff)
        except BackendUnavailable:
            deleted = 0  # the next sweep deletes them; the rest of this one goes on
            log.warning("retention skipped: the database is unavailable")
        if deleted:
            log.info("old sessions deleted", extra={"count": deleted})
        for session in self._sessions.values():
            if session.wallet.pending is not None:
                session.expire_wallet_tx()
        deadline = time.monotonic() - self.settings.session_timeout_seconds
        expired = [
            session
            for session in self._sessions.values()
            if session.is_idle and session.last_active < deadline
        ]
        if expired:
            try:
                # Out of memory only once on disk: another worker (or this one, later)
                # that loads the session then reads everything it said.
                await self.store.flush()
            except BackendUnavailable:
                log.warning("eviction postponed: the database is unavailable")
                expired = []
            # Still idle and still here after the wait (a request may have used it).
            expired = [
                session
                for session in expired
                if session.is_idle
                and session.last_active < deadline
                and self._sessions.get(session.id) is session
            ]
        for session in expired:
            del self._sessions[session.id]
            session.closed = True
        if expired and self.peers is not None:
            await self.peers.released([session.id for session in expired])
        if expired:
            self.metrics.sessions_expired.inc(len(expired))
            self.metrics.sessions_active.set(len(self._sessions))
            log.info("sessions expired", extra={"count": len(expired)})
        collect_old()  # the full collection, which runs only here (see chatbot/collector.py)
        return len(expired)

    def check_writable(self) -> None:
        """Refuse a write before it changes anything while the database is away (503).

        Writes queued before the outage are kept and land when it is back; new ones are
        turned away meanwhile, so nothing is acknowledged that could not be stored.
        """
        if not self.store.available:
            raise BackendUnavailable(
                "The database is unavailable; try again shortly.",
                retry_after=self.store.retry_after,
            )
        if self.peers is not None:
            self.peers.check()

    def check_available(self) -> None:
        """Refuse a chat before any session is made for it when no turn could run.

        The one gate: sessions themselves assume a usable model and a writable store.
        """
        self.check_writable()
        self.env.runner.check_available()

    def set_status(self, **flags: bool) -> None:
        """Change process-wide readiness and tell every session's listeners."""
        for name, value in flags.items():
            setattr(self.status, name, value)
        for session in self._sessions.values():
            session.emit_state()

    # ---- streams -------------------------------------------------------------------

    async def open_stream(
        self,
        session_id: str,
        kind: StreamKind,
        last_event_id: int | None = None,
        owner: str = "",
    ) -> Subscriber:
        """Register a stream and queue what it starts with (snapshot, replay or state).

        `owner` is who opens it, counted against MAX_STREAMS_PER_PRINCIPAL: here in one
        process, in Redis in a cluster.
        """
        if len(self._streams) >= self.settings.max_streams:
            raise TooManyStreams("The server has too many open streams.", retry_after=5)
        limit = self.settings.max_streams_per_principal
        if owner and self.peers is None and self._owned_streams[owner] >= limit:
            raise self._too_many_owned_streams()
        session: Stage | None
        if self.peers is not None:
            session = await self.peers.stream_target(session_id)
        else:
            # A write may create the session while `find` awaits the store: look again,
            # with no await before the stream is attached or parked, so it cannot miss it.
            session = await self.find(session_id) or self._sessions.get(session_id)
        listeners = (
            len(session.audience) if session is not None else len(self._waiting.get(session_id, ()))
        )
        if listeners >= self.settings.max_streams_per_session:
            raise TooManyStreams("This session has too many open streams.", retry_after=5)
        remote = None
        if (
            self.peers is not None
            and session is not None
            and last_event_id is not None
            and session.log.since(last_event_id) is None
        ):
            remote = await self.peers.replay(session_id, last_event_id)

        subscriber = Subscriber(
            session_id,
            kind,
            self.settings.subscriber_queue_size,
            self._empty_frame(session_id, kind),
        )
        subscriber.owner = owner
        if self.peers is not None:
            # This worker may have taken the session while the stream was being set up.
            session = self._sessions.get(session_id) or session
        if session is not None:
            session.attach(subscriber)
            if kind is StreamKind.EVENTS:
                subscriber.prime(resume_frames(session, last_event_id, remote))
            else:
                subscriber.push_state(session.legacy_frame())
        else:
            self._waiting.setdefault(session_id, set()).add(subscriber)
            subscriber.prime([subscriber.snapshot()])
        self._streams.add(subscriber)
        if owner:
            self._owned_streams[owner] += 1
        self.metrics.streams_open.labels(kind.value).inc()
        if owner and self.peers is not None:
            # Counted last, in Redis: a refusal (or Redis away) undoes the registration.
            try:
                counted = await self.peers.count_stream(owner, subscriber, limit)
            except BaseException:
                self.close_stream(subscriber)
                raise
            if not counted:
                self.close_stream(subscriber)
                raise self._too_many_owned_streams()
        return subscriber

    def _too_many_owned_streams(self) -> RateLimited:
        self.metrics.rate_limited.labels("streams").inc()
        return RateLimited(
            f"You have {self.settings.max_streams_per_principal} open streams, the most one "
            "may; close some first.",
            retry_after=5,
        )

    def owned_streams(self) -> list[Subscriber]:
        """The open streams counted against a principal's MAX_STREAMS_PER_PRINCIPAL."""
        return [subscriber for subscriber in self._streams if subscriber.owner]

    def close_stream(self, subscriber: Subscriber) -> None:
        """Forget a stream that has ended."""
        if subscriber not in self._streams:
            return
        self._streams.discard(subscriber)
        if subscriber.owner:
            self._owned_streams[subscriber.owner] -= 1
            if not self._owned_streams[subscriber.owner]:
                del self._owned_streams[subscriber.owner]
            if self.peers is not None:
                self.peers.uncount_stream(subscriber)
        self.metrics.streams_open.labels(subscriber.kind.value).dec()
        session = self._sessions.get(subscriber.session_id)
        if session is not None:
            session.detach(subscriber)
        elif self.peers is not None:
            self.peers.stream_closed(subscriber)
        waiting = self._waiting.get(subscriber.session_id)
        if waiting is not None:
            waiting.discard(subscriber)
            if not waiting:
                del self._waiting[subscriber.session_id]

    def _empty_frame(self, session_id: str, kind: StreamKind) -> Callable[[], bytes]:
        """How a stream on a not-yet-created session renders: an empty state at seq 0."""
        placeholder = self.placeholder(session_id)
        return placeholder.snapshot_frame if kind is StreamKind.EVENTS else placeholder.legacy_frame

    @property
    def _keepalive_walk_seconds(self) -> float:
        # Walking often keeps each silence between K - walk and K: a stream gets about one
        # comment per K, not one per K/2 as a walk every K/2 would need (docs/BENCHMARKS.md).
        return self.settings.sse_keepalive_seconds / KEEPALIVE_WALKS

    def _keepalive(self) -> None:
        """Send a comment to every stream that would otherwise stay silent past K."""
        keepalive = self.settings.sse_keepalive_seconds
        quiet_since = time.monotonic() - (keepalive - self._keepalive_walk_seconds)
        for subscriber in self._streams:
            if subscriber.last_write <= quiet_since:
                subscriber.keepalive()

    # ---- hooks (SessionHooks) -------------------------------------------------------

    def events_sent(self, count: int) -> None:
        """Count frames handed to subscribers."""
        self.metrics.events_sent += count

    def turn_started(self, session_id: str) -> None:
        """Count a turn that began."""
        self.metrics.turns_running.inc()
        if scope := scope_in(session_id):
            self._scope_turns[scope] += 1
        if self.peers is not None:
            self.peers.turn_started(session_id)

    def turn_ended(self, session_id: str) -> None:
        """Count a turn that ended."""
        self.metrics.turns_running.dec()
        if scope := scope_in(session_id):
            self._scope_turns[scope] -= 1
            if not self._scope_turns[scope]:
                del self._scope_turns[scope]
        if self.peers is not None:
            self.peers.turn_ended(session_id)


def resume_frames(stage: Stage, last_seq: int | None, remote: list[bytes] | None) -> list[bytes]:
    """What a (re)connecting events stream gets first: exactly the missed events, or a
    snapshot when they are gone. `remote` holds the cluster's copy after `last_seq`, for
    when this worker's own buffer starts later."""
    if last_seq is None:
        return [stage.snapshot_frame()]
    frames = stage.log.since(last_seq)
    if frames is None and remote is not None and last_seq <= stage.log.seq:
        newest, known = stage.log.seq, last_seq + len(remote)
        if known >= newest:
            frames = remote[: newest - last_seq]  # newer ones reach this worker's streams soon
        else:
            tail = stage.log.since(known)
            frames = remote + tail if tail is not None else None
    return frames if frames is not None else [stage.snapshot_frame()]
