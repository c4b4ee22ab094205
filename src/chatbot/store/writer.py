"""Queued writes committed in batches by one task, for every backend.

Why it is shaped this way:

- `enqueue` runs on the event loop for every streamed message, so it only appends a
  ready-made `(statement, parameters)` pair to a list. A later save of the same row
  (a reply that grew) replaces the earlier one still queued: a batch carries each row
  once, however slow commits get.
- One writer task commits whatever has accumulated in ONE transaction, so the cost of a
  commit is paid per batch, not per save. It waits `batch_interval` for more writes to
  join a batch, unless someone flushes.
- `flush` is a group commit: every caller that waits for the same batch shares its commit.
- A batch the database refuses (`StoreError` or any error but `StoreUnavailable`) is
  dropped and its flushes fail: retrying it would fail forever and hold back every
  later write. A batch that fails because the database is away (`StoreUnavailable`)
  goes back to the head of the queue and is retried with backoff, so writes are kept
  and land in order once it is back; the flushes that waited for it, and any flush
  meanwhile, get `StoreUnavailable` instead of hanging the request that waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from chatbot.model import redact
from chatbot.store.base import StoreError, StoreUnavailable

logger = logging.getLogger("chatbot.store")

Params = tuple[object, ...]
Write = tuple[str, Params]
"""A queued statement and its parameters; the first parameter is always the session id."""
RowKey = tuple[object, ...]
"""What identifies the row a write upserts: the statement and the row's key columns."""

Commit = Callable[[list[Write]], Awaitable[None]]

RETRY_INITIAL_SECONDS: Final = 0.1
RETRY_MAX_SECONDS: Final = 5.0
CLOSE_RETRY_SECONDS: Final = 10.0
"""How long `close` keeps retrying writes while the database is away before giving up."""


class BatchWriter:
    """The write queue of one store, and the task that commits it."""

    def __init__(self, commit: Commit, *, where: str, batch_interval: float = 0.05) -> None:
        self._commit = commit
        self._where = where
        self._batch_interval = batch_interval
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._queue: list[Write] = []
        self._keys: list[RowKey] = []
        """The row each write of `_queue` upserts, in the same order."""
        self._rows: dict[RowKey, int] = {}
        """Where each row's write stands in `_queue`, so a newer save replaces it."""
        self._queued_done: asyncio.Future[None] | None = None
        """Resolves when the writes now in `_queue` are committed; made when first needed."""
        self._committing: asyncio.Future[None] | None = None
        """Resolves when the batch the writer is committing right now is committed."""
        self._down_since: float | None = None
        self._retry_delay = RETRY_INITIAL_SECONDS
        self._wakeup = asyncio.Event()
        """Set when the queue gets its first write (or on close): the writer has work."""
        self._urgent = asyncio.Event()
        """Set by `flush`: commit now instead of waiting for more writes to join."""

    # ---- life ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task."""
        self._closing = False
        self._task = asyncio.create_task(self._write_batches(), name="store-writer")
        self._task.add_done_callback(self._stopped)

    async def stop(self) -> None:
        """Commit everything queued, then end the task; raises if that commit fails."""
        if self._task is None:
            return
        self._closing = True  # no new writes from here on
        self._wakeup.set()
        self._urgent.set()
        try:
            while self._queue or self._committing is not None:
                if self._queue:
                    if self._queued_done is None:
                        self._queued_done = _batch_future()
                    done = self._queued_done
                else:
                    assert self._committing is not None
                    done = self._committing
                # The database being away ends this attempt, not the wait: the writer
                # retries until CLOSE_RETRY_SECONDS, then gives the writes up.
                with contextlib.suppress(StoreUnavailable):
                    await asyncio.shield(done)
        finally:
            task, self._task = self._task, None
            self._wakeup.set()
            await task

    @property
    def available(self) -> bool:
        """False while queued writes wait for the database to come back."""
        return self._down_since is None

    @property
    def retry_after(self) -> float:
        """When a client should try again, while the database is away (seconds)."""
        return max(1.0, self._retry_delay)

    # ---- writes ----------------------------------------------------------------------

    def enqueue(self, sql: str, params: Params, key: RowKey) -> None:
        """Queue one upsert of the row `key` names; a newer one replaces it until committed."""
        if self._task is None or self._closing:
            raise StoreError(f"The store {self._where} is not open; nothing was saved.")
        self._add((sql, params), (sql, *key))
        if len(self._queue) == 1:
            self._wakeup.set()

    def _add(self, write: Write, row: RowKey) -> None:
        queued = self._rows.get(row)
        if queued is not None:
            self._queue[queued] = write
            return
        self._rows[row] = len(self._queue)
        self._queue.append(write)
        self._keys.append(row)

    async def flush(self) -> None:
        """Wait until every write queued before this call is committed.

        Waiters share the future of the batch their writes are in, so a hundred flushes
        cost one commit. The future is shielded: a cancelled caller must not cancel the
        commit the others wait for. While the database is away this raises
        `StoreUnavailable` at once; the writes stay queued and land when it is back.
        """
        if self._queue:
            if self._task is None or self._task.done():
                raise StoreError(f"The store {self._where} is not writing; nothing was saved.")
            if self._queued_done is None:
                self._queued_done = _batch_future()
            done = self._queued_done
            self._urgent.set()
        elif self._committing is not None:
            done = self._committing
        else:
            return
        if not self.available:
            raise self._unavailable()
        await asyncio.shield(done)

    def _unavailable(self) -> StoreUnavailable:
        return StoreUnavailable(
            f"The database {self._where} is unavailable; queued writes are kept and will "
            "be saved when it is back.",
            retry_after=self.retry_after,
        )

    # ---- the writer task ---------------------------------------------------------------

    async def _write_batches(self) -> None:
        """One batch at a time, until closed with an empty queue."""
        while True:
            await self._wakeup.wait()
            if self._queue and not self._urgent.is_set():
                await self._linger(self._batch_interval)
            self._wakeup.clear()
            self._urgent.clear()
            if self._queue:
                if not await self._commit_queue():
                    await self._back_off()
            elif self._closing:
                return

    async def _linger(self, seconds: float) -> None:
        """Give more writes `seconds` to join this batch, unless someone flushes."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._urgent.wait()

    async def _commit_queue(self) -> bool:
        """Commit the queue as one batch; False when the database was away."""
        writes, keys, done = self._queue, self._keys, self._queued_done or _batch_future()
        self._queue, self._keys, self._rows, self._queued_done = [], [], {}, None
        self._committing = done
        try:
            await self._commit(writes)
        except StoreUnavailable as exc:
            # Its flushes answer now; the writes wait for the next attempt.
            _settle(done, self._keep_for_retry(writes, keys, exc))
            return False
        except Exception as exc:  # refused: report it, drop the batch, keep the writer alive
            _settle(done, self._batch_failed(writes, exc))
        else:
            _settle(done, None)
            if self._down_since is not None:
                logger.info(
                    "The database %s is back; saved the writes kept for %.1f s",
                    self._where,
                    time.monotonic() - self._down_since,
                )
                self._down_since = None
                self._retry_delay = RETRY_INITIAL_SECONDS
        finally:
            self._committing = None
        return True

    def _keep_for_retry(
        self, writes: list[Write], keys: list[RowKey], exc: StoreUnavailable
    ) -> StoreError:
        """Put the batch back in front of what came since, or give it up when closing.

        Returns what the batch's flushes are told.
        """
        down_for = 0.0 if self._down_since is None else time.monotonic() - self._down_since
        if self._closing and down_for > CLOSE_RETRY_SECONDS:
            error = self._batch_failed(writes + self._queue, exc)
            if self._queued_done is not None:
                _settle(self._queued_done, error)
            self._queue, self._keys, self._rows, self._queued_done = [], [], {}, None
            return error
        newer = list(zip(self._queue, self._keys, strict=True))
        self._queue, self._keys, self._rows = [], [], {}
        # A newer save of a kept row replaces it in place: the row keeps its turn.
        for write, row in [*zip(writes, keys, strict=True), *newer]:
            self._add(write, row)
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "The database %s is unavailable; keeping %d writes and retrying: %s",
                self._where,
                len(self._queue),
                exc,
            )
        return self._unavailable()

    async def _back_off(self) -> None:
        """Wait before the next attempt: longer each time, up to RETRY_MAX_SECONDS."""
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, RETRY_MAX_SECONDS)
        await asyncio.sleep(delay)
        self._wakeup.set()
        self._urgent.set()  # a retry commits at once, with whatever joined meanwhile

    def _batch_failed(self, writes: list[Write], exc: Exception) -> StoreError:
        """Log a lost batch without contents or full ids; the error for its flushes."""
        sessions = sorted({redact(str(params[0])) for _, params in writes})
        logger.error(
            "Could not commit %d queued writes for %d sessions (%s) to %s: %s: %s",
            len(writes),
            len(sessions),
            ", ".join(sessions[:10]) + (", …" if len(sessions) > 10 else ""),
            self._where,
            type(exc).__name__,
            exc,
        )
        return StoreError(f"Could not commit {len(writes)} queued writes to {self._where}: {exc}")

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """Fail the flushes still waiting if the writer ends early (cancelled at shutdown)."""
        for done in (self._committing, self._queued_done):
            if done is not None and not done.done():
                done.set_exception(
                    StoreError(f"The writer of {self._where} stopped before committing.")
                )


def _batch_future() -> asyncio.Future[None]:
    """A batch's future; an error nobody awaited (cancelled flushes) is not reported twice."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.add_done_callback(_consume_exception)
    return done


def _consume_exception(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
