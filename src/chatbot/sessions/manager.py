"""The registry of live sessions: lookup, creation, removal, limits, expiry, streams.

Reads never create a session. A stream opened on an id that does not exist yet waits
in `_waiting` and is attached when a write creates that session, so nothing is
allocated per unknown id beyond the stream itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from inspect import isawaitable

from chatbot.collector import collect_old
from chatbot.config import Settings
from chatbot.errors import BackendUnavailable, SessionNotFound, TooManySessions, TooManyStreams
from chatbot.metrics import Metrics
from chatbot.model import new_session_id, redact
from chatbot.sessions.events import MemoryEventLog, StreamKind, Subscriber
from chatbot.sessions.ports import TurnRunner
from chatbot.sessions.session import ServerStatus, Session, SessionEnv
from chatbot.store.base import Store

log = logging.getLogger("chatbot.sessions")
KEEPALIVE_WALKS = 4  # walks per SSE_KEEPALIVE_SECONDS: silences last 0.75-1 of it


class SessionManager:
    """Owns every in-memory session and every open stream of one process."""

    def __init__(
        self, settings: Settings, runner: TurnRunner, metrics: Metrics, store: Store
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.status = ServerStatus()
        capacity = settings.event_buffer_size
        self.env = SessionEnv(
            settings=settings,
            status=self.status,
            runner=runner,
            hooks=self,
            store=store,
            event_log=lambda _session_id: MemoryEventLog(capacity),
        )
        self._sessions: dict[str, Session] = {}
        self._loading: dict[str, asyncio.Future[Session | None]] = {}
        self._waiting: dict[str, set[Subscriber]] = {}
        self._streams: set[Subscriber] = set()
        self._timers: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._sessions)

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the two process-wide timers: the expiry sweep and the keep-alive walk."""
        self._timers = [
            self._every(self.settings.cleanup_interval_seconds, self.sweep, "sweep"),
            self._every(self._keepalive_walk_seconds, self._keepalive, "keepalive"),
        ]

    async def stop(self) -> None:
        """Stop the timers, end every turn and close every stream."""
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        for session in list(self._sessions.values()):
            await session.close("server_shutdown")
        for waiting in self._waiting.values():
            for subscriber in waiting:
                subscriber.close()

    def end_streams(self) -> None:
        """Finish every open stream (on shutdown, so clients reconnect elsewhere at once)."""
        for subscriber in self._streams:
            subscriber.close()

    def _every(
        self, interval: float, job: Callable[[], object | Awaitable[object]], name: str
    ) -> asyncio.Task[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    result = job()
                    if isawaitable(result):
                        await result
                except Exception:
                    log.exception("timer job failed", extra={"job": name})

        return asyncio.create_task(loop(), name=f"timer-{name}")

    # ---- sessions ------------------------------------------------------------------

    async def find(self, session_id: str) -> Session | None:
        """The session with this id, from memory or loaded from the store; never creates.

        Concurrent finds of one id share one load (a future per id, no global lock).
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
                session = self._register(Session(session_id, self.env, stored.network, stored))
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

    async def get_or_create(self, session_id: str) -> Session:
        """The session with this id, loaded or created on first use.

        After the (shared) load, lookup and insertion happen with no await in between,
        so two concurrent creates of one id always yield the same session.
        """
        # A write may create the session while `find` awaits the store: look again, with
        # no await before the stream is attached or parked, so it cannot miss the session.
        session = await self.find(session_id) or self._sessions.get(session_id)
        if session is not None:
            return session
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        return self._new(session_id)

    def _new(self, session_id: str) -> Session:
        if len(self._sessions) >= self.settings.max_sessions:
            raise TooManySessions(
                "The server holds as many sessions as it may; try again later.",
                retry_after=self.settings.cleanup_interval_seconds,
            )
        session = self._register(Session(session_id, self.env, self.settings.initial_network))
        session.save()
        self.metrics.sessions_created.inc()
        log.info("session created", extra={"session": redact(session_id)})
        return session

    def _register(self, session: Session) -> Session:
        self._sessions[session.id] = session
        for subscriber in self._waiting.pop(session.id, ()):
            session.attach(subscriber)
        self.metrics.sessions_active.set(len(self._sessions))
        return session

    def create(self) -> Session:
        """A new session with a server-made UUIDv4 id.

        A fresh UUIDv4 cannot be in the store, so it is not looked up there: that read
        was nine tenths of a create's cost (docs/BENCHMARKS.md).
        """
        return self._new(new_session_id())

    async def remove(self, session_id: str) -> None:
        """Delete a session and its stored history; its streams get `session.closed`."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self.metrics.sessions_active.set(len(self._sessions))
            await session.close("deleted")
        stored = await self.store.delete(session_id)
        if session is None and not stored:
            raise SessionNotFound(f"No session with id {redact(session_id)!s}.")
        log.info("session removed", extra={"session": redact(session_id)})

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
        self, session_id: str, kind: StreamKind, last_event_id: int | None = None
    ) -> Subscriber:
        """Register a stream and queue what it starts with (snapshot, replay or state)."""
        if len(self._streams) >= self.settings.max_streams:
            raise TooManyStreams("The server has too many open streams.", retry_after=5)
        # A write may create the session while `find` awaits the store: look again, with
        # no await before the stream is attached or parked, so it cannot miss the session.
        session = await self.find(session_id) or self._sessions.get(session_id)
        listeners = (
            len(session.subscribers) + len(session.legacy_subscribers)
            if session is not None
            else len(self._waiting.get(session_id, ()))
        )
        if listeners >= self.settings.max_streams_per_session:
            raise TooManyStreams("This session has too many open streams.", retry_after=5)

        limit = self.settings.subscriber_queue_size
        subscriber = Subscriber(session_id, kind, limit, self._empty_frame(session_id, kind))
        if session is not None:
            session.attach(subscriber)
            if kind is StreamKind.EVENTS:
                subscriber.prime(session.resume_frames(last_event_id))
            else:
                subscriber.push_state(session.legacy_frame())
        else:
            self._waiting.setdefault(session_id, set()).add(subscriber)
            subscriber.prime([subscriber.snapshot()])
        self._streams.add(subscriber)
        self.metrics.streams_open.labels(kind.value).inc()
        return subscriber

    def close_stream(self, subscriber: Subscriber) -> None:
        """Forget a stream that has ended."""
        if subscriber not in self._streams:
            return
        self._streams.discard(subscriber)
        self.metrics.streams_open.labels(subscriber.kind.value).dec()
        session = self._sessions.get(subscriber.session_id)
        if session is not None:
            session.detach(subscriber)
        waiting = self._waiting.get(subscriber.session_id)
        if waiting is not None:
            waiting.discard(subscriber)
            if not waiting:
                del self._waiting[subscriber.session_id]

    def _empty_frame(self, session_id: str, kind: StreamKind) -> Callable[[], bytes]:
        """How a stream on a not-yet-created session renders: an empty state at seq 0."""
        placeholder = Session(session_id, self.env, self.settings.initial_network)
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

    def turn_started(self) -> None:
        """Count a turn that began."""
        self.metrics.turns_running.inc()

    def turn_ended(self) -> None:
        """Count a turn that ended."""
        self.metrics.turns_running.dec()
