"""A stream that falls behind is resynced with a snapshot: never a gap, never a stall.

In-process on purpose: here the test itself is the stream's writer, so it can simply
not write while a reply streams. Over a real socket the kernel's send buffer (up to
4 MB on this machine) would absorb the backlog before the outbox could overflow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatbot.agent.providers import build_backend
from chatbot.agent.runtime import AgentRuntime
from chatbot.config import Settings
from chatbot.metrics import Metrics
from chatbot.sessions.events import StreamKind, Subscriber
from chatbot.sessions.manager import SessionManager
from chatbot.store.sqlite import SqliteStore
from tests.sse import Event, EventsView


def parse_frames(data: bytes) -> list[Event]:
    """SSE frames (as the server writes them) back into events; comments are skipped."""
    events = []
    for block in data.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if fields:
            events.append(Event(fields.get("id"), fields.get("event"), fields.get("data", "")))
    return events


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[SessionManager]:
    store = SqliteStore(tmp_path / "chatbot.db")
    await store.open()
    settings = Settings(
        llm_provider="scripted",
        scripted_tokens_per_second=0,
        subscriber_queue_size=8,
        _env_file=None,  # type: ignore[call-arg]
    )
    runtime = AgentRuntime(build_backend(settings), settings)
    manager = SessionManager(settings, runtime, Metrics(), store)
    yield manager
    await manager.stop()
    await store.close()


async def read_until_idle(subscriber: Subscriber, view: EventsView) -> None:
    while not (view.flags.get("is_processing") is False and len(view.messages) == 2):
        batch = await subscriber.next_batch()
        assert batch is not None
        for event in parse_frames(batch):
            view.apply(event)


async def test_a_stream_that_falls_behind_gets_a_snapshot_and_no_gap(
    manager: SessionManager,
) -> None:
    session = await manager.get_or_create("lagging-session")
    reader = await manager.open_stream(session.id, StreamKind.EVENTS)
    lagging = await manager.open_stream(session.id, StreamKind.EVENTS)
    reader_view, lagging_view = EventsView(), EventsView()
    for subscriber, view in ((reader, reader_view), (lagging, lagging_view)):
        first = await subscriber.next_batch()
        assert first is not None
        view.apply(parse_frames(first)[0])

    words = " ".join(["w"] * 300)
    await session.submit_chat(words)
    await read_until_idle(reader, reader_view)  # the turn has ended; `lagging` read nothing

    batch = await lagging.next_batch()
    assert batch is not None
    events = parse_frames(batch)
    assert events[0].event == "snapshot", "an overflowed stream starts over with a snapshot"
    assert len(events) < session.log.seq, "the backlog was dropped, not kept"
    for event in events:
        lagging_view.apply(event)  # asserts seq continuity after the snapshot
    assert lagging_view.last_seq == session.log.seq
    final = session.state()
    assert lagging_view.contents() == [(m.sender, m.content) for m in final["messages"]]
    assert lagging_view.contents()[-1] == ("agent", f"You said: {words}")
    assert reader_view.contents() == lagging_view.contents()
