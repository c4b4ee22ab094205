"""Turns as a user lives them: busy policies, interrupts, system notes, directives, resume."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.server import RunningServer, run_server
from tests.sse import Event, EventsView, SSEReader, is_idle_state, open_sse

# 30 words: at 20 tokens/s its reply streams for about 1.5 s, long enough to talk over it.
LONG = " ".join(f"word{n}" for n in range(30))
SLOW = {"SCRIPTED_TOKENS_PER_SECOND": "20"}


def reply_to(text: str) -> str:
    """What the scripted provider (SCRIPTED_REPLY's default) answers to `text`."""
    return f"You said: {text}"


def new_sid() -> str:
    return f"turns-{uuid.uuid4().hex[:12]}"


def events_path(session_id: str) -> str:
    return f"/api/sessions/{session_id}/events"


def contents(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["sender"], m["content"]) for m in messages]


def agent_replies(view: EventsView) -> list[dict[str, Any]]:
    """The agent's text messages (not tool calls), in order."""
    return [m for m in view.messages.values() if m["sender"] == "agent" and m["tool"] is None]


def has_deltas(count: int) -> Callable[[EventsView], bool]:
    """At least `count` pieces of agent text have streamed in."""
    return lambda view: sum(len(d) for d in view.deltas.values()) >= count


def answered(text: str) -> Callable[[EventsView], bool]:
    """A finished agent reply to `text` is shown and the turn is over."""

    def check(view: EventsView) -> bool:
        return view.flags.get("is_processing") is False and any(
            m["content"] == reply_to(text) and not m["is_streaming"] for m in agent_replies(view)
        )

    return check


async def follow(
    reader: SSEReader,
    view: EventsView,
    done: Callable[[EventsView], bool],
    timeout: float = 15.0,
) -> list[Event]:
    """Apply events to `view` until `done(view)`; the events read on the way."""
    seen: list[Event] = []
    async with asyncio.timeout(timeout):
        while not done(view):
            event = await reader.next()
            view.apply(event)
            seen.append(event)
    return seen


async def until_idle(reader: SSEReader, view: EventsView) -> list[Event]:
    """Apply events up to and including the `state` event that ends the turn."""
    events = await reader.until(is_idle_state, timeout=15)
    for event in events:
        view.apply(event)
    return events


async def chat(http: httpx.AsyncClient, session_id: str, text: str) -> httpx.Response:
    return await http.post("/api/chat", json={"message": text, "session_id": session_id})


async def state_of(http: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    response = await http.get("/api/state", params={"session_id": session_id})
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def wait_until_idle(http: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    """Watch the session's stream until no turn runs; then its state."""
    async with open_sse(http, events_path(session_id)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        if view.flags["is_processing"]:
            await follow(reader, view, lambda v: v.flags["is_processing"] is False)
    return await state_of(http, session_id)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


@pytest.fixture(scope="module")
async def slow() -> AsyncIterator[RunningServer]:
    """BUSY_POLICY=reject at 20 tokens/s: a long reply is still streaming when we act."""
    async with run_server(BUSY_POLICY="reject", **SLOW) as running:
        yield running


@pytest.fixture(scope="module")
async def queueing() -> AsyncIterator[RunningServer]:
    async with run_server(BUSY_POLICY="queue", MAX_QUEUED_MESSAGES="2", **SLOW) as running:
        yield running


@pytest.fixture(scope="module")
async def interrupting() -> AsyncIterator[RunningServer]:
    async with run_server(BUSY_POLICY="interrupt", **SLOW) as running:
        yield running


# As fast as possible, with small buffers and room for very long messages.
INSTANT = {"SCRIPTED_TOKENS_PER_SECOND": "0", "MAX_MESSAGE_LENGTH": "100000"}


@pytest.fixture(scope="module")
async def instant() -> AsyncIterator[RunningServer]:
    """BUSY_POLICY=reject, replies at once, EVENT_BUFFER_SIZE=16, SUBSCRIBER_QUEUE_SIZE=8."""
    async with run_server(
        BUSY_POLICY="reject", EVENT_BUFFER_SIZE="16", SUBSCRIBER_QUEUE_SIZE="8", **INSTANT
    ) as running:
        yield running


@asynccontextmanager
async def two_warm_clients(
    server: RunningServer,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two clients, each with an open keep-alive connection, to send two requests at once."""
    async with server.client() as one, server.client() as two:
        for http in (one, two):
            assert (await http.get("/health")).status_code == 200
        yield one, two


async def keep_server_busy(http: httpx.AsyncClient) -> None:
    """Another user's very long reply (at SCRIPTED_TOKENS_PER_SECOND=0), just started.

    Right after this returns the server spends tens of milliseconds on that turn, so
    requests sent now are read together, in one go, once it is done.
    """
    response = await chat(http, new_sid(), " ".join(["w"] * 20000))
    assert response.status_code == 200, response.text


# ---- busy policy: reject ---------------------------------------------------------------


async def test_reject_policy_refuses_a_message_during_a_turn_and_accepts_one_after(
    slow: RunningServer,
) -> None:
    sid = new_sid()
    async with slow.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, LONG)).status_code == 200
        await follow(reader, view, has_deltas(2))

        busy = await chat(http, sid, "are you there?")
        assert_error(busy, 409, "session_busy")
        during = await state_of(http, sid)
        assert during["is_processing"] is True
        assert [m["content"] for m in during["messages"] if m["sender"] == "user"] == [LONG]

        await until_idle(reader, view)
        assert (await chat(http, sid, "now?")).status_code == 200
        await follow(reader, view, answered("now?"))

    expected = [
        ("user", LONG),
        ("agent", reply_to(LONG)),
        ("user", "now?"),
        ("agent", reply_to("now?")),
    ]
    assert view.contents() == expected
    async with slow.client() as http:
        assert contents((await state_of(http, sid))["messages"]) == expected


# ---- busy policy: queue ----------------------------------------------------------------


async def test_queue_policy_shows_a_queued_message_at_once_and_answers_it_after(
    queueing: RunningServer,
) -> None:
    sid = new_sid()
    async with queueing.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, LONG)).status_code == 200
        await follow(reader, view, has_deltas(2))

        queued = await chat(http, sid, "and then?")
        assert queued.status_code == 200, queued.text
        body = queued.json()
        assert body["is_processing"] is True
        assert contents(body["queued"]) == [("user", "and then?")]
        assert "and then?" not in [m["content"] for m in body["messages"]]
        first_reply = next(m for m in body["messages"] if m["sender"] == "agent")
        assert first_reply["is_streaming"] is True

        await until_idle(reader, view)

    expected = [
        ("user", LONG),
        ("agent", reply_to(LONG)),
        ("user", "and then?"),
        ("agent", reply_to("and then?")),
    ]
    assert view.contents() == expected
    assert [m["status"] for m in agent_replies(view)] == ["complete", "complete"]
    async with queueing.client() as http:
        final = await state_of(http, sid)
    assert contents(final["messages"]) == expected
    assert final["queued"] == []
    assert final["is_processing"] is False


async def test_queue_policy_answers_each_queued_message_in_order(
    queueing: RunningServer,
) -> None:
    """Two messages wait; each gets its own answer, first in, first answered."""
    sid = new_sid()
    async with queueing.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, LONG)).status_code == 200
        await follow(reader, view, has_deltas(2))
        assert (await chat(http, sid, "second")).status_code == 200
        assert (await chat(http, sid, "third")).status_code == 200
        await until_idle(reader, view)

    assert view.contents() == [
        ("user", LONG),
        ("agent", reply_to(LONG)),
        ("user", "second"),
        ("agent", reply_to("second")),
        ("user", "third"),
        ("agent", reply_to("third")),
    ]


async def test_queue_policy_stream_shows_the_queue_shrinking(queueing: RunningServer) -> None:
    """Once the queued message is being answered, the stream no longer counts it as waiting."""
    sid = new_sid()
    async with queueing.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, LONG)).status_code == 200
        await follow(reader, view, has_deltas(2))
        assert (await chat(http, sid, "later")).status_code == 200
        await follow(reader, view, lambda v: len(v.flags["queued"]) == 1)
        await follow(reader, view, lambda v: len(agent_replies(v)) == 2)

        assert view.flags["queued"] == [], "the stream still says a message is waiting"
        await until_idle(reader, view)


async def test_queue_policy_full_queue_answers_429_with_retry_after(
    queueing: RunningServer,
) -> None:
    sid = new_sid()
    async with queueing.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, LONG)).status_code == 200
        await follow(reader, view, has_deltas(2))
        for text in ("one", "two"):  # MAX_QUEUED_MESSAGES=2
            assert (await chat(http, sid, text)).status_code == 200

        full = await chat(http, sid, "one too many")
        assert_error(full, 429, "queue_full")
        assert int(full.headers["Retry-After"]) > 0

        during = await state_of(http, sid)
        assert [m["content"] for m in during["queued"]] == ["one", "two"]
        users = [m["content"] for m in during["messages"] if m["sender"] == "user"]
        assert users == [LONG]

        stopped = (await http.post("/api/interrupt", json={"session_id": sid})).json()
        assert stopped["queued"] == []
        kept = [(m["content"], m["status"]) for m in stopped["messages"] if m["sender"] == "user"]
        assert kept == [(LONG, "complete"), ("one", "interrupted"), ("two", "interrupted")]


# ---- busy policy: interrupt ------------------------------------------------------------


async def test_interrupt_policy_a_new_message_interrupts_the_running_reply(
    interrupting: RunningServer,
) -> None:
    sid = new_sid()
    async with interrupting.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, LONG)).status_code == 200
        await follow(reader, view, has_deltas(3))

        response = await chat(http, sid, "stop, new question")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["is_processing"] is True
        # The new turn starts before the answer (the message is stored meanwhile), so
        # its first words may already follow the question.
        shown = contents(body["messages"])
        assert ("user", "stop, new question") in shown
        assert all(
            sender == "agent"
            for sender, _ in shown[shown.index(("user", "stop, new question")) + 1 :]
        )
        cut = body["messages"][1]
        assert (cut["sender"], cut["status"], cut["is_streaming"]) == (
            "agent",
            "interrupted",
            False,
        )

        await follow(reader, view, answered("stop, new question"))

    messages = list(view.messages.values())
    assert [m["sender"] for m in messages] == ["user", "agent", "system", "user", "agent"]
    partial = messages[1]
    assert partial["status"] == "interrupted"
    assert partial["is_streaming"] is False
    assert partial["content"]
    assert reply_to(LONG).startswith(partial["content"])
    assert len(partial["content"]) < len(reply_to(LONG))
    assert "interrupted" in messages[2]["content"].lower()
    assert messages[4]["content"] == reply_to("stop, new question")
    assert messages[4]["status"] == "complete"
    async with interrupting.client() as http:
        assert (await state_of(http, sid))["messages"] == messages


async def test_interrupt_policy_two_messages_sent_at_once_are_both_handled() -> None:
    """A double send while the server is busy: neither request hangs, the session ends idle.

    Both requests are read together, so the second one arrives before the first one's
    turn has had any chance to run.
    """
    sid = new_sid()
    async with (
        run_server(BUSY_POLICY="interrupt", **INSTANT) as running,
        running.client() as http,
        two_warm_clients(running) as (one, two),
    ):
        await keep_server_busy(http)
        try:
            responses = await asyncio.wait_for(
                asyncio.gather(chat(one, sid, "first"), chat(two, sid, "second")), timeout=3
            )
        except TimeoutError:
            pytest.fail("a POST /api/chat never answered")
        assert [r.status_code for r in responses] == [200, 200]

        final = await asyncio.wait_for(wait_until_idle(http, sid), timeout=5)
    users = [m["content"] for m in final["messages"] if m["sender"] == "user"]
    assert sorted(users) == ["first", "second"]
    last = final["messages"][-1]
    assert (last["sender"], last["content"]) == ("agent", reply_to(users[-1]))


# ---- interrupt -------------------------------------------------------------------------


async def test_interrupt_mid_stream_keeps_the_partial_reply_and_the_next_message_works(
    slow: RunningServer,
) -> None:
    sid = new_sid()
    async with slow.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, LONG)).status_code == 200
        await follow(reader, view, has_deltas(3))

        response = await http.post("/api/interrupt", json={"session_id": sid})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["is_processing"] is False
        cut = body["messages"][1]
        assert (cut["sender"], cut["status"], cut["is_streaming"]) == (
            "agent",
            "interrupted",
            False,
        )
        assert contents(body["messages"])[-1] == ("system", "Interrupted by user.")

        tail = await until_idle(reader, view)
        # Everything happened before the interrupt answered: the stream ends where it did.
        assert int(tail[-1].id or -1) == body["seq"]
        completed = next(
            i
            for i, e in enumerate(tail)
            if e.event == "message.completed" and e.json()["message"]["id"] == cut["id"]
        )
        late = [e for e in tail[completed:] if e.event == "message.delta"]
        assert late == [], "text kept streaming after the reply was closed"

        partial = view.messages[cut["id"]]
        assert partial["content"] == "".join(view.deltas[cut["id"]])
        assert partial["content"] == cut["content"]
        assert partial["content"]
        assert reply_to(LONG).startswith(partial["content"])
        assert len(partial["content"]) < len(reply_to(LONG))
        assert view.contents() == [
            ("user", LONG),
            ("agent", partial["content"]),
            ("system", "Interrupted by user."),
        ]

        assert (await chat(http, sid, "again")).status_code == 200
        following = await reader.next()
        assert int(following.id or -1) == body["seq"] + 1
        assert following.event == "message.created"
        assert following.json()["message"]["content"] == "again"
        view.apply(following)
        await follow(reader, view, answered("again"))

        final = await state_of(http, sid)
    assert view.contents() == [
        ("user", LONG),
        ("agent", partial["content"]),
        ("system", "Interrupted by user."),
        ("user", "again"),
        ("agent", reply_to("again")),
    ]
    assert final["messages"] == list(view.messages.values())
    assert final["messages"][1]["status"] == "interrupted"


async def test_interrupt_while_idle_changes_nothing(slow: RunningServer) -> None:
    sid = new_sid()
    async with slow.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, "hi")).status_code == 200
        await follow(reader, view, answered("hi"))
        before = await state_of(http, sid)

        for _ in range(2):
            response = await http.post("/api/interrupt", json={"session_id": sid})
            assert response.status_code == 200, response.text
            assert response.json()["seq"] == before["seq"]
            assert response.json()["messages"] == before["messages"]
            assert response.json()["is_processing"] is False
        assert await state_of(http, sid) == before

        # Nothing was emitted: the next event is the next message's.
        assert (await chat(http, sid, "still fine")).status_code == 200
        following = await reader.next()
        assert int(following.id or -1) == before["seq"] + 1
        assert following.json()["message"]["content"] == "still fine"


async def test_interrupt_on_an_unknown_session_is_404_and_creates_nothing(
    client: httpx.AsyncClient, sid: str
) -> None:
    response = await client.post("/api/interrupt", json={"session_id": sid})
    assert_error(response, 404, "session_not_found")
    missing = await client.get("/api/state", params={"session_id": sid})
    assert_error(missing, 404, "session_not_found")


async def test_stop_sent_together_with_a_message_leaves_the_session_usable(
    instant: RunningServer,
) -> None:
    """Send and Stop at the same moment while the server is busy with someone else.

    Both requests are read together, so the stop can come before the new turn has
    run at all. Whatever it stops, the session must end idle and take the next message.
    """
    sid = new_sid()
    async with instant.client() as http, two_warm_clients(instant) as (one, two):
        assert (await chat(http, sid, "hello")).status_code == 200
        await wait_until_idle(http, sid)

        await keep_server_busy(http)
        sent, stopped = await asyncio.wait_for(
            asyncio.gather(
                chat(one, sid, "hi"), two.post("/api/interrupt", json={"session_id": sid})
            ),
            timeout=5,
        )
        assert sent.status_code == 200, sent.text
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["is_processing"] is False, "still busy after the stop returned"
        # A stop read first finds nothing to stop, and "hi" then gets its answer:
        # either way the session must come back to idle by itself.
        await asyncio.wait_for(wait_until_idle(http, sid), timeout=5)

        again = await chat(http, sid, "again")
        assert again.status_code == 200, again.text
        final = await asyncio.wait_for(wait_until_idle(http, sid), timeout=5)
    assert contents(final["messages"])[-2:] == [("user", "again"), ("agent", reply_to("again"))]


# ---- system messages -------------------------------------------------------------------


async def test_system_message_on_an_idle_session_shows_at_once_and_starts_a_turn(
    client: httpx.AsyncClient, sid: str
) -> None:
    async with open_sse(client, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        response = await client.post(
            "/api/system", json={"message": "Transaction sent: 0xabc", "session_id": sid}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert contents(body["messages"]) == [("system", "Transaction sent: 0xabc")]
        assert body["is_processing"] is True
        await follow(reader, view, answered("Transaction sent: 0xabc"))

    assert view.contents() == [
        ("system", "Transaction sent: 0xabc"),
        ("agent", reply_to("Transaction sent: 0xabc")),
    ]
    assert contents((await state_of(client, sid))["messages"]) == view.contents()


async def test_system_message_on_a_busy_session_shows_at_once_without_another_turn(
    slow: RunningServer,
) -> None:
    sid = new_sid()
    async with slow.client() as http, open_sse(http, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(http, sid, LONG)).status_code == 200
        await follow(reader, view, has_deltas(2))

        response = await http.post("/api/system", json={"message": "Heads up", "session_id": sid})
        assert response.status_code == 200, response.text
        body = response.json()
        assert contents(body["messages"])[-1] == ("system", "Heads up")
        assert body["is_processing"] is True

        await until_idle(reader, view)
        assert view.contents() == [
            ("user", LONG),
            ("agent", reply_to(LONG)),
            ("system", "Heads up"),
        ]
        # No second turn follows: the next event is the next message's.
        assert (await chat(http, sid, "ok")).status_code == 200
        following = await reader.next()
        assert following.event == "message.created"
        assert following.json()["message"]["content"] == "ok"
        view.apply(following)
        await follow(reader, view, answered("ok"))
    assert [m for m in view.contents() if m[0] == "agent"] == [
        ("agent", reply_to(LONG)),
        ("agent", reply_to("ok")),
    ]


# ---- scripted directives ---------------------------------------------------------------


async def test_tool_directive_shows_the_failed_call_and_a_reply_about_it(
    client: httpx.AsyncClient, sid: str
) -> None:
    text = '/tool some_tool {"a": 1}'
    async with open_sse(client, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(client, sid, text)).status_code == 200
        events = await until_idle(reader, view)

    tool_events = [e for e in events if e.event in ("tool.call", "tool.result")]
    assert [e.event for e in tool_events] == ["tool.call", "tool.result"]
    call, result = (e.json()["message"] for e in tool_events)
    assert call["id"] == result["id"]
    assert call["tool"]["name"] == "some_tool"
    assert call["tool"]["args"] == {"a": 1}
    assert call["tool"]["status"] == "running"
    assert result["tool"]["status"] == "error"
    # pydantic-ai answers a call to a tool the agent does not have; the model sees that.
    assert "Unknown tool name: 'some_tool'" in result["tool"]["error"]
    assert result["is_streaming"] is False

    messages = list(view.messages.values())
    assert [m["sender"] for m in messages] == ["user", "agent", "agent"]
    assert messages[1]["id"] == call["id"]
    reply = messages[2]
    assert reply["tool"] is None
    assert reply["status"] == "complete"
    assert "some_tool" in reply["content"]
    assert "Unknown tool name: 'some_tool'" in reply["content"]
    assert (await state_of(client, sid))["messages"] == messages


async def test_error_directive_shows_the_failure_and_the_session_stays_usable(
    client: httpx.AsyncClient, sid: str
) -> None:
    async with open_sse(client, events_path(sid)) as reader:
        view = EventsView()
        view.apply(await reader.next())
        assert (await chat(client, sid, "/error boom")).status_code == 200
        await until_idle(reader, view)
        messages = list(view.messages.values())
        assert [m["sender"] for m in messages] == ["user", "system"]
        assert "boom" in messages[1]["content"]

        assert (await chat(client, sid, "hello again")).status_code == 200
        await follow(reader, view, answered("hello again"))
    assert view.contents()[2:] == [("user", "hello again"), ("agent", reply_to("hello again"))]
    assert contents((await state_of(client, sid))["messages"]) == view.contents()


# ---- resuming the typed stream ---------------------------------------------------------


@pytest.mark.parametrize("how", ["header", "query"])
async def test_resume_mid_turn_replays_exactly_the_missed_events(
    slow: RunningServer, how: str
) -> None:
    sid = new_sid()
    view = EventsView()
    async with slow.client() as http:
        async with open_sse(http, events_path(sid)) as clock:
            clock_view = EventsView()
            clock_view.apply(await clock.next())
            async with open_sse(http, events_path(sid)) as first:
                view.apply(await first.next())
                assert (await chat(http, sid, LONG)).status_code == 200
                await follow(first, view, has_deltas(3))
            last = view.last_seq
            # Let the turn go on while we are away.
            await follow(clock, clock_view, lambda v: v.last_seq >= last + 3)
            assert clock_view.flags["is_processing"] is True

            if how == "header":
                resume = open_sse(http, events_path(sid), headers={"Last-Event-ID": str(last)})
            else:
                resume = open_sse(http, f"{events_path(sid)}?last_event_id={last}")
            async with resume as second:
                replayed = await second.next()
                assert replayed.event != "snapshot"
                assert int(replayed.id or -1) == last + 1
                view.apply(replayed)
                await follow(second, view, answered(LONG))
        final = await state_of(http, sid)

    reply = next(m for m in final["messages"] if m["sender"] == "agent")
    assert reply["content"] == reply_to(LONG)
    assert "".join(view.deltas[reply["id"]]) == reply["content"]
    assert list(view.messages.values()) == final["messages"]
    assert view.last_seq == final["seq"]


async def test_resume_from_an_event_that_left_the_buffer_gets_a_snapshot(
    instant: RunningServer,
) -> None:
    sid = new_sid()
    async with instant.client() as http:
        async with open_sse(http, events_path(sid)) as reader:
            view = EventsView()
            view.apply(await reader.next())
            assert (await chat(http, sid, LONG)).status_code == 200
            await follow(reader, view, answered(LONG))
        state = await state_of(http, sid)
        assert state["seq"] > 17  # EVENT_BUFFER_SIZE=16: event 2 has left the buffer

        async with open_sse(http, events_path(sid), headers={"Last-Event-ID": "1"}) as old:
            snapshot = await old.next()
        assert snapshot.event == "snapshot"
        assert int(snapshot.id or -1) == state["seq"]
        assert snapshot.json()["messages"] == state["messages"]

        # The newest 16 events are still there: resuming from just before them replays them.
        since = state["seq"] - 16
        async with open_sse(http, events_path(sid), headers={"Last-Event-ID": str(since)}) as ok:
            replayed = [await ok.next() for _ in range(16)]
        assert [int(e.id or -1) for e in replayed] == list(range(since + 1, state["seq"] + 1))
        assert all(e.event != "snapshot" for e in replayed)

        since -= 1
        async with open_sse(http, events_path(sid), headers={"Last-Event-ID": str(since)}) as gone:
            first = await gone.next()
        assert first.event == "snapshot"
        assert first.json()["messages"] == state["messages"]


async def test_resume_from_the_current_seq_replays_nothing_then_streams_live(
    slow: RunningServer,
) -> None:
    sid = new_sid()
    async with slow.client() as http:
        async with open_sse(http, events_path(sid)) as reader:
            view = EventsView()
            view.apply(await reader.next())
            assert (await chat(http, sid, "hi")).status_code == 200
            await follow(reader, view, answered("hi"))
        seq = (await state_of(http, sid))["seq"]

        headers = {"Last-Event-ID": str(seq)}
        async with open_sse(http, events_path(sid), headers=headers) as resumed:
            assert (await chat(http, sid, "more")).status_code == 200
            live = await resumed.next()
            assert int(live.id or -1) == seq + 1
            assert live.event == "message.created"
            assert live.json()["message"]["content"] == "more"
            view.apply(live)
            await follow(resumed, view, answered("more"))
    assert view.contents()[-2:] == [("user", "more"), ("agent", reply_to("more"))]


@pytest.mark.parametrize("how", ["header", "query"])
async def test_resume_with_a_non_numeric_last_event_id_is_400(
    client: httpx.AsyncClient, sid: str, how: str
) -> None:
    if how == "header":
        response = await client.get(events_path(sid), headers={"Last-Event-ID": "abc"})
    else:
        response = await client.get(events_path(sid), params={"last_event_id": "abc"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_last_event_id"
    assert "Last-Event-ID" in error["message"]
