"""The real agent: Anthropic and OpenAI (through fake servers that speak their wire formats)
and the embedded local model, driven over HTTP and watched through the sessions' streams.

Each remote provider gets one fake and one app for the module (`remote`), pointed at the
fake with a distinctive API key and fast retries; every test starts from a reset fake.
The last remote test searches everything the app said and logged for that key.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.fakes import Error, FakeLLM, Kind, RecordedRequest, Reply, ToolCall, last_user_text
from tests.server import RunningServer, run_server
from tests.sse import Event, EventsView, SSEReader, open_sse

KINDS: list[Kind] = ["anthropic", "openai"]
SECRET = "sk-test-SECRET-123456"
MAX_RETRIES = 3
RETRY_MAX_SECONDS = 0.2
NETWORKS = {
    "testnet": {"chain_id": 31337, "rpc_url": "http://127.0.0.1:8545"},
    "sepolia": {"chain_id": 11155111, "rpc_url": "http://127.0.0.1:8546"},
}
REMOTE_ENV = {
    "LLM_MAX_RETRIES": str(MAX_RETRIES),
    "LLM_RETRY_INITIAL_SECONDS": "0.01",
    "LLM_RETRY_MAX_SECONDS": str(RETRY_MAX_SECONDS),
    "NETWORKS": json.dumps(NETWORKS),
    # The most verbose log (the SDKs' request logging included) must not carry the key either.
    "LOG_LEVEL": "debug",
}
# Text a provider puts in its error body; the user must never see it verbatim.
RAW_BODY = "upstream-raw-error-body-7f3a"


# ---- the app under test and one user of it ---------------------------------------------


@dataclass
class App:
    """A running app, its fake provider (if any), and every byte of state it sent back."""

    server: RunningServer
    fake: FakeLLM | None = None
    sent: list[str] = field(default_factory=list)
    session_ids: list[str] = field(default_factory=list)

    @property
    def llm(self) -> FakeLLM:
        assert self.fake is not None
        return self.fake


class User:
    """One browser tab: a session, its typed events stream and the state rebuilt from it."""

    def __init__(self, app: App, http: httpx.AsyncClient, reader: SSEReader, sid: str) -> None:
        self.app = app
        self.http = http
        self.reader = reader
        self.sid = sid
        self.view = EventsView()
        self.events: list[Event] = []
        self.busy = False
        self.turns_ended = 0

    async def read(self, timeout: float = 10.0) -> Event:
        event = await self.reader.next(timeout)
        self.app.sent.append(event.data)
        self.view.apply(event)
        self.events.append(event)
        if event.event == "state":
            processing = event.json()["is_processing"]
            if processing:
                self.busy = True
            elif self.busy:
                self.busy = False
                self.turns_ended += 1
        return event

    async def follow(self, done: Callable[[EventsView], bool], timeout: float = 15.0) -> None:
        """Read events until `done(view)` holds."""
        async with asyncio.timeout(timeout):
            while not done(self.view):
                await self.read()

    async def until_turns_ended(self, count: int, timeout: float = 15.0) -> None:
        """Read events until `count` turns have started and ended on this stream."""
        async with asyncio.timeout(timeout):
            while self.turns_ended < count:
                await self.read()

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(path, json={**body, "session_id": self.sid})
        self.app.sent.append(response.text)
        return response

    async def chat(self, text: str) -> None:
        response = await self.post("/api/chat", {"message": text})
        assert response.status_code == 200, response.text

    async def ask(self, text: str, timeout: float = 15.0) -> None:
        """Send a message and watch its turn to the end."""
        target = self.turns_ended + 1
        await self.chat(text)
        await self.until_turns_ended(target, timeout)

    async def set_network(self, network: str) -> None:
        response = await self.post(
            "/api/mcp-command", {"command": "set_network", "args": {"network": network}}
        )
        assert response.status_code == 200, response.text
        assert response.json()["success"] is True
        await self.follow(lambda view: view.flags.get("network") == network)

    async def state(self) -> dict[str, Any]:
        response = await self.http.get("/api/state", params={"session_id": self.sid})
        self.app.sent.append(response.text)
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state

    def replies(self) -> list[dict[str, Any]]:
        """The agent's text messages (not tool calls), in order."""
        return [
            m for m in self.view.messages.values() if m["sender"] == "agent" and m["tool"] is None
        ]

    def tool_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.view.messages.values() if m["tool"] is not None]

    def notes(self) -> list[str]:
        return [m["content"] for m in self.view.messages.values() if m["sender"] == "system"]

    def deltas(self, message: dict[str, Any]) -> list[str]:
        return self.view.deltas.get(message["id"], [])


@asynccontextmanager
async def user(app: App) -> AsyncIterator[User]:
    """A new session id with its events stream open (the session is made by the first write)."""
    sid = f"prov-{uuid.uuid4().hex[:12]}"
    app.session_ids.append(sid)
    async with (
        app.server.client() as http,
        open_sse(http, f"/api/sessions/{sid}/events") as reader,
    ):
        person = User(app, http, reader, sid)
        assert (await person.read()).event == "snapshot"
        yield person


def has_deltas(count: int) -> Callable[[EventsView], bool]:
    return lambda view: sum(len(pieces) for pieces in view.deltas.values()) >= count


def system_text(request: RecordedRequest) -> str:
    """The system prompt a request carried, in either provider's format."""
    if request.kind == "anthropic":
        system = request.body.get("system")
        if isinstance(system, list):
            return "\n".join(str(block.get("text", "")) for block in system)
        return system if isinstance(system, str) else ""
    return "\n".join(
        str(message.get("content"))
        for message in request.messages
        if message.get("role") in ("system", "developer")
    )


def call_id_for(kind: Kind, name: str) -> str:
    return f"toolu_{name}_1" if kind == "anthropic" else f"call_{name}_1"


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=KINDS)
async def remote(request: pytest.FixtureRequest) -> AsyncIterator[App]:
    """A fake provider and an app that uses it with SECRET and fast, bounded retries."""
    kind: Kind = request.param
    async with (
        FakeLLM.start(kind) as fake,
        run_server(**fake.env(api_key=SECRET), **REMOTE_ENV) as server,
    ):
        yield App(server, fake)


@pytest.fixture
def app(remote: App) -> App:
    """The module's remote app with its fake reset: no script, Echo by default."""
    remote.llm.reset()
    return remote


# ---- 1. streamed text ------------------------------------------------------------------


async def test_streamed_text_arrives_as_deltas_of_the_providers_reply(app: App) -> None:
    fake = app.llm
    reply = Reply(["Hello", ", I am ", "your Ethereum ", "operations ", "assistant."], delay=0.02)
    fake.script(reply)
    async with user(app) as alice:
        await alice.set_network("sepolia")
        await alice.ask("Who are you?")

    assert alice.view.contents() == [("user", "Who are you?"), ("agent", reply.text)]
    (message,) = alice.replies()
    assert (message["status"], message["is_streaming"]) == ("complete", False)
    deltas = alice.deltas(message)
    assert len(deltas) > 1, "the reply streamed in pieces, not at once"
    assert "".join(deltas) == reply.text

    (request,) = fake.requests
    assert request.stream
    assert request.last_user_text == "Who are you?"
    system = system_text(request)
    assert "Ethereum" in system
    assert "sepolia" in system, "the session's own network is in the model's context"
    assert "11155111" in system
    assert request.api_key == SECRET


# ---- 2. a tool call round trip ---------------------------------------------------------


async def test_a_tool_call_is_shown_as_its_own_message_and_answered(app: App) -> None:
    fake = app.llm
    address = "0x" + "ab" * 20
    call_id = call_id_for(fake.kind, "get_balance")
    answer = Reply.words("I have no balance tool yet, so I cannot read it.", delay=0.01)
    fake.script(ToolCall("get_balance", {"address": address}, call_id=call_id), answer)
    async with user(app) as bob:
        await bob.ask(f"What is the balance of {address}?")

    (tool_message,) = bob.tool_messages()
    tool = tool_message["tool"]
    assert (tool["name"], tool["args"]) == ("get_balance", {"address": address})
    assert tool["status"] == "error"
    assert "get_balance" in tool["error"]
    assert tool_message["is_streaming"] is False
    (reply,) = bob.replies()
    assert (reply["content"], reply["status"]) == (answer.text, "complete")
    assert [sender for sender, _ in bob.view.contents()] == ["user", "agent", "agent"]

    def position(kind: str, message_id: str) -> int:
        return next(
            index
            for index, event in enumerate(bob.events)
            if event.event == kind and event.json().get("message", {}).get("id") == message_id
        )

    called = position("tool.call", tool_message["id"])
    returned = position("tool.result", tool_message["id"])
    answered = position("message.created", reply["id"])
    assert called < returned < answered

    first, second = await fake.wait_requests(2)
    assert len(fake.requests) == 2
    assert first.tool_results() == []
    (result,) = second.tool_results()
    assert result.call_id == call_id
    assert "get_balance" in result.content


# ---- 3. retries ------------------------------------------------------------------------


async def test_a_rate_limit_is_retried_and_the_user_just_sees_the_reply(app: App) -> None:
    fake = app.llm
    reply = Reply.words("Answered after a short wait.")
    fake.script(Error(429, retry_after=1), reply)
    async with user(app) as carol:
        await carol.ask("Are you rate limited?")

    assert carol.view.contents() == [("user", "Are you rate limited?"), ("agent", reply.text)]
    first, second = fake.requests
    assert (first.status, second.status) == (429, 200)
    assert second.api_key == SECRET
    # Retry-After asked for 1 s; LLM_RETRY_MAX_SECONDS caps the wait at 0.2 s.
    assert first.completed_at is not None
    waited = second.received_at - first.completed_at
    assert RETRY_MAX_SECONDS * 0.75 <= waited < 0.9


async def test_server_errors_are_retried_then_reported_and_the_session_stays_usable(
    app: App,
) -> None:
    fake = app.llm
    fake.script(*[Error(500, message=RAW_BODY)] * (MAX_RETRIES + 2))
    async with user(app) as dave:
        await dave.ask("Will this work?")

        assert len(fake.requests) == MAX_RETRIES + 1
        assert fake.pending == 1, "no request beyond LLM_MAX_RETRIES retries"
        assert all(request.status == 500 for request in fake.requests)
        assert dave.replies() == []
        (note,) = dave.notes()
        assert "HTTP 500" in note
        assert RAW_BODY not in note
        assert SECRET not in note
        state = await dave.state()
        assert state["is_processing"] is False
        assert [m["sender"] for m in state["messages"]] == ["user", "system"]

        fake.reset()
        reply = Reply.words("Back to normal.")
        fake.script(reply)
        await dave.ask("And now?")

    assert dave.view.contents()[-2:] == [("user", "And now?"), ("agent", reply.text)]
    (request,) = fake.requests
    # The failed question stays in the history the model gets, with the new one.
    assert "And now?" in request.last_user_text
    assert "Will this work?" in json.dumps(request.messages)


# ---- 4. interrupt mid-stream -----------------------------------------------------------


async def test_interrupt_closes_the_providers_stream_and_keeps_the_partial_reply(
    app: App,
) -> None:
    fake = app.llm
    fake.script(Reply(["tick "] * 200, delay=0.05))
    async with user(app) as erin:
        await erin.chat("Count slowly.")
        await erin.follow(has_deltas(3))
        before = time.monotonic()
        response = await erin.post("/api/interrupt", {})
        gone_at = await fake.wait_disconnect(timeout=2.0)
        assert gone_at - before < 1.0, "the provider saw the disconnect within a second"

        assert response.status_code == 200, response.text
        state = response.json()
        assert state["is_processing"] is False
        await erin.until_turns_ended(1)

        (request,) = fake.requests
        await fake.wait_for(lambda: request.finished, timeout=1.0, what="the stream's end")
        assert request.completed_at is None
        assert request.frames_sent < request.frames_total

        (partial,) = erin.replies()
        assert (partial["status"], partial["is_streaming"]) == ("interrupted", False)
        assert partial["content"].startswith("tick tick tick")
        assert len(partial["content"]) < len("tick ") * 200
        assert erin.view.contents() == [
            ("user", "Count slowly."),
            ("agent", partial["content"]),
            ("system", "Interrupted by user."),
        ]
        assert [(m["sender"], m["content"], m["status"]) for m in state["messages"]] == [
            ("user", "Count slowly.", "complete"),
            ("agent", partial["content"], "interrupted"),
            ("system", "Interrupted by user.", "complete"),
        ]

        reply = Reply.words("Still here.")
        fake.script(reply)
        await erin.ask("Are you there?")
    assert erin.view.contents()[-1] == ("agent", reply.text)


# ---- 5. two sessions at once -----------------------------------------------------------


async def test_two_sessions_stream_at_once_without_interleaving(app: App) -> None:
    fake = app.llm

    def words_for(word: str) -> list[str]:
        return [f"{word}{n} " for n in range(12)]

    def respond(body: dict[str, Any]) -> Reply:
        return Reply(words_for(last_user_text(body).split()[-1]), delay=0.03)

    fake.responder = respond
    async with user(app) as alice, user(app) as bob:
        await bob.set_network("sepolia")
        await asyncio.gather(alice.chat("please say alpha"), bob.chat("please say bravo"))
        await fake.wait_for(
            lambda: len(fake.requests) == 2 and fake.in_flight == 2,
            timeout=5.0,
            what="both streams open at once",
        )
        await asyncio.gather(alice.until_turns_ended(1), bob.until_turns_ended(1))

    for person, own, other in ((alice, "alpha", "bravo"), (bob, "bravo", "alpha")):
        (reply,) = person.replies()
        assert reply["content"] == "".join(words_for(own))
        assert reply["status"] == "complete"
        deltas = person.deltas(reply)
        assert len(deltas) > 1
        assert all(own in delta and other not in delta for delta in deltas)

    by_word = {request.last_user_text.split()[-1]: request for request in fake.requests}
    assert "testnet" in system_text(by_word["alpha"])
    assert "sepolia" not in system_text(by_word["alpha"])
    assert "sepolia" in system_text(by_word["bravo"])
    assert "testnet" not in system_text(by_word["bravo"])


# ---- 7. the key never leaks (runs last on each remote app) -----------------------------


async def test_the_api_key_never_reaches_a_user_or_the_log(app: App) -> None:
    fake = app.llm
    # A provider that echoes the key in its error body: the user still must not see it.
    fake.script(Error(401, message=f"Incorrect API key provided: {SECRET}. {RAW_BODY}"))
    async with user(app) as frank:
        await frank.ask("Show me your key.")
    (request,) = fake.requests
    assert request.api_key == SECRET, "the app did authenticate with the key"
    (note,) = frank.notes()
    assert "HTTP 401" in note
    assert RAW_BODY not in note

    async with app.server.client() as http:
        for sid in app.session_ids:
            response = await http.get("/api/state", params={"session_id": sid})
            assert response.status_code == 200, response.text
            app.sent.append(response.text)
        app.sent.append((await http.get("/metrics")).text)
    assert len(app.session_ids) >= 2
    leaks = [text for text in app.sent if SECRET in text]
    assert leaks == []
    log = app.server.log_text()
    assert "model failed" in log, "the log was captured"
    assert SECRET not in log
    assert RAW_BODY not in log


# ---- 6. a provider chosen without its key ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_provider_without_its_key_refuses_chat_and_names_the_variable(
    kind: Kind,
) -> None:
    variable = f"{kind.upper()}_API_KEY"
    async with (
        run_server(LLM_PROVIDER=kind, ANTHROPIC_API_KEY="", OPENAI_API_KEY="") as server,
        server.client() as http,
    ):
        created = await http.post("/api/sessions")
        assert created.status_code == 201, created.text
        sid = created.json()["session_id"]
        async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
            snapshot = await reader.next()
            assert snapshot.event == "snapshot"
            assert snapshot.json()["missing_api_key"] is True
            assert snapshot.json()["messages"] == []

            for body in ({"message": "hello", "session_id": sid}, {"message": "hello"}):
                refused = await http.post("/api/chat", json=body)
                assert refused.status_code == 503, refused.text
                error = refused.json()["error"]
                assert error["code"] == "missing_api_key"
                assert variable in error["message"]

            state = (await http.get("/api/state", params={"session_id": sid})).json()
            assert state["missing_api_key"] is True
            assert state["messages"] == []
            assert state["is_processing"] is False
            assert state["seq"] == int(snapshot.id or "0"), "nothing happened in the session"

        async with open_sse(http, f"/api/chat/stream?session_id={sid}") as legacy:
            first = (await legacy.next()).json()
            assert (first["missing_api_key"], first["messages"]) == (True, [])


# ---- 8. the real local model -----------------------------------------------------------

LOCAL_ENV = {"LLM_PROVIDER": "local", "LLM_MAX_OUTPUT_TOKENS": "48"}


@pytest.fixture(scope="module")
async def local() -> AsyncIterator[App]:
    async with run_server(**LOCAL_ENV) as server:
        yield App(server)


def check_local_reply(person: User) -> None:
    (reply,) = person.replies()
    assert reply["status"] == "complete"
    assert reply["is_streaming"] is False
    assert reply["content"].strip()
    deltas = person.deltas(reply)
    assert deltas, "the reply streamed"
    assert "".join(deltas) == reply["content"]


async def test_local_model_loads_then_answers_a_session_made_at_start_up(local: App) -> None:
    async with local.server.client() as http:
        created = await http.post("/api/sessions")
    assert created.status_code == 201, created.text
    sid = created.json()["session_id"]
    local.session_ids.append(sid)
    async with (
        local.server.client() as http,
        open_sse(http, f"/api/sessions/{sid}/events") as reader,
    ):
        person = User(local, http, reader, sid)
        snapshot = await person.read()
        assert snapshot.event == "snapshot"
        assert snapshot.json()["is_processing"] is False
        if snapshot.json()["is_loading"]:
            await person.follow(lambda view: view.flags["is_loading"] is False)
            assert person.events[-1].event == "state"
        await person.ask("What is Ethereum? Answer in one sentence.", timeout=60)
    check_local_reply(person)
    assert person.view.flags["is_loading"] is False


async def test_local_model_answers_two_sessions_at_once(local: App) -> None:
    async with user(local) as alice, user(local) as bob:
        await asyncio.gather(alice.chat("Say hello to Alice."), bob.chat("Say hello to Bob."))
        await asyncio.gather(
            alice.until_turns_ended(1, timeout=60), bob.until_turns_ended(1, timeout=60)
        )
    for person in (alice, bob):
        check_local_reply(person)
        assert person.notes() == []
