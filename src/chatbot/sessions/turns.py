"""One session's turn machine: at most one running turn, and what runs next.

Every decision about turns lives here: a message that arrives while a turn runs
(`BUSY_POLICY`), a note the agent must act on after the current step, an interrupt,
and, when a turn ends, which of the follow-up note and the queued messages runs next.
The session supplies the transcript the turn writes; the machine never touches events,
subscribers or storage itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from chatbot.config import BusyPolicy, Settings
from chatbot.errors import QueueFull, SessionBusy
from chatbot.model import Message, MessageStatus, redact
from chatbot.sessions.ports import Transcript, TurnRunner

log = logging.getLogger("chatbot.session")

INTERRUPTED_BY_USER = "Interrupted by user."
INTERRUPTED_BY_NEW_MESSAGE = "Interrupted by a new message."


class TurnHost(Transcript, Protocol):
    """The session a machine runs turns for: its transcript, plus what winding up needs."""

    def add_message(self, message: Message) -> Message:
        """Append a message to the transcript and announce it."""

    def emit_state(self) -> None:
        """Announce a change of flags (processing, queue)."""

    def close_open(self, status: MessageStatus) -> None:
        """Finish every message still streaming (a running tool call is interrupted)."""

    def turn_started(self) -> None:
        """A turn task began."""

    def turn_ended(self) -> None:
        """A turn task ended, however it ended."""


class Turns:
    """At most one turn task per session, the messages waiting for it, and its follow-up."""

    __slots__ = (
        "_closed",
        "_follow_up",
        "_host",
        "_interrupt_note",
        "_queue",
        "_runner",
        "_settings",
        "_task",
    )

    def __init__(self, host: TurnHost, runner: TurnRunner, settings: Settings) -> None:
        self._host = host
        self._runner = runner
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self._queue: deque[Message] = deque()
        self._follow_up: Message | None = None
        self._interrupt_note: str | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        """True from the start of a turn until its task has ended."""
        return self._task is not None

    @property
    def queued(self) -> list[Message]:
        """Messages waiting under BUSY_POLICY=queue, oldest first."""
        return list(self._queue)

    async def submit(self, message: Message) -> bool:
        """Start the turn that answers `message` (True), or queue it (False).

        While a turn runs, BUSY_POLICY decides: refuse (`SessionBusy`), queue, or
        interrupt the running turn first.
        """
        if self._task is not None:
            policy = self._settings.busy_policy
            if policy is BusyPolicy.REJECT:
                raise SessionBusy("The agent is still answering; wait, or interrupt it first.")
            if policy is BusyPolicy.QUEUE:
                self._enqueue(message)
                return False
            while self._task is not None:
                await self.interrupt(INTERRUPTED_BY_NEW_MESSAGE)
        self._start(self._host.add_message(message))
        return True

    def _enqueue(self, message: Message) -> None:
        """Hold a message until the running turn ends; it shows in `queued` meanwhile.

        It joins the transcript only when its own turn starts, so the transcript reads
        in order and the model never sees a message sent after the one it answers.
        """
        if len(self._queue) >= self._settings.max_queued_messages:
            raise QueueFull("Too many messages are waiting; try again shortly.", retry_after=1)
        self._queue.append(message)
        self._host.emit_state()

    def start_if_idle(self, trigger: Message) -> None:
        """Answer a note already in the transcript, unless a turn is running."""
        if self._task is None:
            self._start(trigger)

    def follow_up(self, note: Message) -> None:
        """Answer a note the agent must act on: now if idle, else right after this turn.

        Either way one `state` event follows, already showing the turn that will answer.
        """
        if self._task is None:
            self._start(note)
        else:
            self._follow_up = note
            self._host.emit_state()

    async def interrupt(self, note: str = INTERRUPTED_BY_USER) -> None:
        """Cancel the running turn and wait until it has ended; harmless when idle."""
        task = self._task
        if task is None:
            return
        if self._interrupt_note is None:
            self._interrupt_note = note
        task.cancel()
        await asyncio.wait([task])

    async def close(self) -> None:
        """Stop the running turn without a note and start nothing after it."""
        self._closed = True
        self._interrupt_note = ""
        await self.interrupt()

    def abandon(self) -> None:
        """Cancel the running turn without waiting for it; start nothing after it."""
        self._closed = True
        self._interrupt_note = ""
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()

    def _start(self, trigger: Message) -> None:
        self._interrupt_note = None
        task = asyncio.create_task(self._run(trigger), name=f"turn-{redact(self._host.id)}")
        # Clean-up lives in a done-callback, not in `finally`: a task cancelled before
        # its first step never runs its body at all.
        task.add_done_callback(self._done)
        self._task = task
        self._host.turn_started()
        self._host.emit_state()

    async def _run(self, trigger: Message) -> None:
        host = self._host
        try:
            while True:
                await self._runner.run_turn(host, trigger)
                if self._follow_up is not None:
                    trigger, self._follow_up = self._follow_up, None
                    continue
                if not self._queue:
                    return
                trigger = host.add_message(self._queue.popleft())
                host.emit_state()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            self._wind_up(MessageStatus.INTERRUPTED, self._interrupt_note)
        except Exception:
            log.exception("turn failed", extra={"session": redact(host.id)})
            self._wind_up(
                MessageStatus.ERROR,
                "The agent failed unexpectedly; you can send another message.",
            )

    def _done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():  # cancelled before its first step
            self._wind_up(MessageStatus.INTERRUPTED, self._interrupt_note)
        self._task = None
        self._host.turn_ended()
        if self._closed:
            return
        # Work can arrive after the task saw nothing left to do but before this callback
        # ran (the session still looked busy then): it is answered now, not stranded.
        follow_up, self._follow_up = self._follow_up, None
        if follow_up is not None:
            self._start(follow_up)
        elif self._queue:
            self._start(self._host.add_message(self._queue.popleft()))
        else:
            self._host.emit_state()

    def _wind_up(self, status: MessageStatus, note: str | None) -> None:
        """End a turn early: close open messages, keep queued ones, say why.

        A pending follow-up is dropped with the turn: its note is in the transcript,
        and the user's next message starts the next turn.
        """
        self._follow_up = None
        self._host.close_open(status)
        # Messages still waiting are kept in the transcript, marked unanswered,
        # so nothing the user wrote ever vanishes.
        while self._queue:
            waiting = self._queue.popleft()
            waiting.status = MessageStatus.INTERRUPTED
            self._host.add_message(waiting)
        if note:
            self._host.add_system_message(note)
