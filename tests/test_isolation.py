"""Many people at once: every session sees only its own conversation."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.server import RunningServer
from tests.sse import EventsView, SSEReader, is_idle_state, open_sse


async def wait_for_reply(reader: SSEReader, view: EventsView, expected: str) -> None:
    """Apply events until an agent message with exactly `expected` is complete."""

    def done(event: object) -> bool:
        return any(
            m["sender"] == "agent" and m["content"] == expected and not m["is_streaming"]
            for m in view.messages.values()
        )

    while not done(None):
        view.apply(await reader.next())


async def read_legacy_until(reader: SSEReader, expected: str) -> list[dict[str, object]]:
    """Full states from the legacy stream until one shows `expected` as a finished reply."""
    states = []
    while True:
        state = (await reader.next()).json()
        states.append(state)
        if (
            any(m["content"] == expected and not m["is_streaming"] for m in state["messages"])
            and not state["is_processing"]
        ):
            return states


async def test_two_sessions_post_at_once_with_both_streams_open(client: httpx.AsyncClient) -> None:
    """The original plan's test: session-1 and session-2 each see only their own messages."""
    ids = [f"session-1-{uuid.uuid4().hex[:6]}", f"session-2-{uuid.uuid4().hex[:6]}"]
    async with (
        open_sse(client, f"/api/sessions/{ids[0]}/events") as events_1,
        open_sse(client, f"/api/sessions/{ids[1]}/events") as events_2,
        open_sse(client, f"/api/chat/stream?session_id={ids[0]}") as legacy_1,
        open_sse(client, f"/api/chat/stream?session_id={ids[1]}") as legacy_2,
    ):
        views = [EventsView(), EventsView()]
        for reader, view in zip((events_1, events_2), views, strict=True):
            view.apply(await reader.next())
        for legacy in (legacy_1, legacy_2):
            assert (await legacy.next()).json()["messages"] == []

        responses = await asyncio.gather(
            client.post("/api/chat", json={"message": "Hello from one", "session_id": ids[0]}),
            client.post("/api/chat", json={"message": "Hello from two", "session_id": ids[1]}),
        )
        assert [r.status_code for r in responses] == [200, 200]
        assert [r.json()["session_id"] for r in responses] == ids

        await asyncio.gather(
            wait_for_reply(events_1, views[0], "You said: Hello from one"),
            wait_for_reply(events_2, views[1], "You said: Hello from two"),
        )
        assert views[0].contents() == [
            ("user", "Hello from one"),
            ("agent", "You said: Hello from one"),
        ]
        assert views[1].contents() == [
            ("user", "Hello from two"),
            ("agent", "You said: Hello from two"),
        ]
        for legacy, word, other in ((legacy_1, "one", "two"), (legacy_2, "two", "one")):
            states = await read_legacy_until(legacy, f"You said: Hello from {word}")
            assert all(f"from {other}" not in str(s["messages"]) for s in states)

    for session_id, word in zip(ids, ("one", "two"), strict=True):
        state = (await client.get("/api/state", params={"session_id": session_id})).json()
        assert [(m["sender"], m["content"]) for m in state["messages"]] == [
            ("user", f"Hello from {word}"),
            ("agent", f"You said: Hello from {word}"),
        ]


async def test_200_concurrent_sessions_never_see_each_others_words(
    server: RunningServer,
) -> None:
    """Unique words in 200 sessions: none leaks into another session's state or streams."""
    count = 200
    ids = [f"crowd-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    words = {sid: f"word{uuid.uuid4().hex[:12]}" for sid in ids}
    limits = httpx.Limits(max_connections=3 * count + 10)
    async with server.client(limits=limits) as http:

        async def one(session_id: str) -> tuple[str, list[str], list[str]]:
            word = words[session_id]
            async with (
                open_sse(http, f"/api/sessions/{session_id}/events") as events,
                open_sse(http, f"/api/chat/stream?session_id={session_id}") as legacy,
            ):
                await events.next()
                await legacy.next()
                response = await http.post(
                    "/api/chat", json={"message": word, "session_id": session_id}
                )
                assert response.status_code == 200
                typed = await events.until(is_idle_state, timeout=60)
                states = await read_legacy_until(legacy, f"You said: {word}")
            final = await http.get(f"/api/sessions/{session_id}")
            return (
                final.text,
                [e.data for e in typed],
                [str(s) for s in states],
            )

        results = await asyncio.gather(*(one(session_id) for session_id in ids))

    all_words = set(words.values())
    for session_id, (state_text, typed, legacy) in zip(ids, results, strict=True):
        own = words[session_id]
        assert f"You said: {own}" in state_text
        for text in (state_text, *typed, *legacy):
            leaked = {w for w in all_words - {own} if w in text}
            assert not leaked, f"{session_id} saw {leaked}"
