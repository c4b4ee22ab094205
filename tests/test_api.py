"""The HTTP API as clients meet it: bad input, session lifecycle, limits, streams, operations.

Most tests use the shared default server; tests that need other settings share one
server per kind (module-scoped): `custom` (DEFAULT_SESSION_ID, two networks, fast
keep-alives, two streams per session), `expiry` (short timeouts) and `limited`
(three sessions at most).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatbot.config import Settings
from tests.server import (
    READY_LINE,
    RunningServer,
    free_port,
    run_chatbot,
    run_server,
    server_environment,
)
from tests.sse import Event, EventsView, SSEReader, is_idle_state, open_sse

NETWORKS = (
    '{"testnet":{"chain_id":31337,"rpc_url":"http://127.0.0.1:8545"},'
    '"sepolia":{"chain_id":11155111,"rpc_url":"http://127.0.0.1:8546",'
    '"explorer_url":"https://sepolia.etherscan.io","currency":"SepoliaETH"}}'
)
DEFAULT_ID = "shared"
MAX_MESSAGE = 8000
MAX_BODY = 256 * 1024

ACTIVE = "chatbot_sessions_active"
CREATED = "chatbot_sessions_created_total"
EXPIRED = "chatbot_sessions_expired_total"
TURNS = "chatbot_turns_running"
EVENTS_SENT = "chatbot_events_sent_total"
STREAMS_EVENTS = 'chatbot_streams_open{kind="events"}'
STREAMS_LEGACY = 'chatbot_streams_open{kind="legacy"}'

# Every session id the tests send to or receive from their own servers; the last test
# checks that none of them shows up in full in those servers' logs.
USED_IDS: set[str] = set()


def new_id(prefix: str = "api") -> str:
    """A fresh session id, remembered for the log check."""
    session_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
    USED_IDS.add(session_id)
    return session_id


async def _remember_ids(response: httpx.Response) -> None:
    if session_id := response.headers.get("x-session-id"):
        USED_IDS.add(session_id)


def own_client(server: RunningServer) -> httpx.AsyncClient:
    """A client that remembers every session id a server names in `X-Session-Id`."""
    return server.client(event_hooks={"response": [_remember_ids]})


# ---- servers with their own settings -------------------------------------------------


@pytest.fixture(scope="module")
async def custom() -> AsyncIterator[RunningServer]:
    async with run_server(
        SCRIPTED_TOKENS_PER_SECOND="100",
        DEFAULT_SESSION_ID=DEFAULT_ID,
        NETWORKS=NETWORKS,
        SSE_KEEPALIVE_SECONDS="0.4",
        MAX_STREAMS_PER_SESSION="2",
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def expiry() -> AsyncIterator[RunningServer]:
    async with run_server(
        SCRIPTED_TOKENS_PER_SECOND="100",
        SESSION_TIMEOUT_SECONDS="0.5",
        CLEANUP_INTERVAL_SECONDS="0.2",
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def limited() -> AsyncIterator[RunningServer]:
    async with run_server(SCRIPTED_TOKENS_PER_SECOND="100", MAX_SESSIONS="3") as running:
        yield running


@pytest.fixture
async def custom_client(custom: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with own_client(custom) as http:
        yield http


# ---- helpers ---------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format: sample name (with labels) -> value."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def read_metrics(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse_metrics(response.text)


def assert_uuid4(value: str) -> None:
    parsed = uuid.UUID(value)
    assert parsed.version == 4
    assert str(parsed) == value


@dataclass
class Answer:
    """A response read safely: a stream (where none was due) is not read to its end."""

    status: int
    headers: httpx.Headers
    body: bytes | None  # None: the server opened an event stream

    def json(self) -> Any:
        assert self.body is not None, f"got an event stream ({self.status}), not JSON"
        return json.loads(self.body)


async def send(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    content: bytes | AsyncIterator[bytes] | None = None,
    headers: dict[str, str | bytes] | None = None,
) -> Answer:
    async with http.stream(method, path, content=content, headers=headers) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return Answer(response.status_code, response.headers, None)
        return Answer(response.status_code, response.headers, await response.aread())


def assert_envelope(
    answer: Answer, status: int, code: str | None, path: str = ""
) -> dict[str, Any]:
    """`{"error": {"code", "message"}}` and nothing else (mcp-command: its result fields)."""
    assert answer.status == status, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert isinstance(body, dict)
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"code", "message"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["code"], str)
    assert error["code"]
    if code is not None:
        assert error["code"] == code
    extra = set(body) - {"error"}
    if path.startswith("/api/mcp-command"):
        assert extra <= {"success", "message", "data"}
    else:
        assert not extra, body
    return body


async def chunks(data: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    """A body sent with `Transfer-Encoding: chunked` (no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def wait_for_agent_reply(reader: SSEReader, view: EventsView, expected: str) -> None:
    """Apply typed events until `expected` is a finished agent reply and the turn is over."""
    while True:
        event = await reader.next()
        view.apply(event)
        finished = any(
            m["sender"] == "agent" and m["content"] == expected and not m["is_streaming"]
            for m in view.messages.values()
        )
        if finished and is_idle_state(event):
            return


async def read_legacy_until(reader: SSEReader, expected: str) -> dict[str, Any]:
    """Full states from a legacy stream until one shows `expected` finished and the turn over."""
    while True:
        state: dict[str, Any] = (await reader.next()).json()
        if (
            any(m["content"] == expected and not m["is_streaming"] for m in state["messages"])
            and not state["is_processing"]
        ):
            return state


def contents(state: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["sender"], m["content"]) for m in state["messages"]]


class CommentReader(SSEReader):
    """An SSE reader that can also wait for the next keep-alive comment."""

    async def next_comment(self, timeout: float = 5.0) -> str:
        """The next comment line; an event arriving first fails the test."""

        async def read() -> str:
            async for line in self._lines:
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    return self.comments[-1]
                assert line == "", f"expected only keep-alives on an idle stream, got {line!r}"
            raise EOFError("stream ended")

        return await asyncio.wait_for(read(), timeout)


@asynccontextmanager
async def open_commented_sse(http: httpx.AsyncClient, path: str) -> AsyncIterator[CommentReader]:
    async with http.stream("GET", path) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"].startswith("text/event-stream")
        yield CommentReader(response)


# ---- 1. bad input ----------------------------------------------------------------------

TARGET = "@SID@"  # replaced by the session the bad request aims at


@dataclass(frozen=True)
class Bad:
    """One bad request and the error it must get."""

    method: str
    path: str
    status: int
    code: str | None  # None: any code
    body: Any = None  # JSON-able, or raw bytes; None: no body
    headers: tuple[tuple[str, bytes], ...] = ()
    chunked: bool = False
    command_result: bool = False  # mcp-command: also `success: false`, message, data

    async def send(self, http: httpx.AsyncClient, session_id: str) -> Answer:
        path = self.path.replace(TARGET, session_id)
        headers: dict[str, str | bytes] = {
            name: value.replace(TARGET.encode(), session_id.encode())
            for name, value in self.headers
        }
        content: bytes | AsyncIterator[bytes] | None = None
        if self.body is not None:
            raw = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
            raw = raw.replace(TARGET.encode(), session_id.encode())
            headers.setdefault("content-type", "application/json")
            content = chunks(raw) if self.chunked else raw
        return await send(http, self.method, path, content, headers)


BAD_IDS = {
    "space": "a b",
    "unicode": "sessión-1",
    "129-chars": "x" * 129,
    "10KB": "y" * 10 * 1024,
}


def _bad_id_cases() -> list[Any]:
    code = "invalid_session_id"
    cases = []
    for name, bad in BAD_IDS.items():
        header = (("x-session-id", bad.encode()),)
        where = {
            "chat-body": Bad("POST", "/api/chat", 400, code, {"message": "hi", "session_id": bad}),
            "system-body": Bad(
                "POST", "/api/system", 400, code, {"message": "hi", "session_id": bad}
            ),
            "mcp-body": Bad(
                "POST", "/api/mcp-command", 400, code, {"command": "get_network", "session_id": bad}
            ),
            "interrupt-body": Bad("POST", "/api/interrupt", 400, code, {"session_id": bad}),
            "state-query": Bad("GET", f"/api/state?session_id={bad}", 400, code),
            "legacy-stream-query": Bad("GET", f"/api/chat/stream?session_id={bad}", 400, code),
            "state-header": Bad("GET", "/api/state", 400, code, headers=header),
            "chat-header": Bad("POST", "/api/chat", 400, code, {"message": "hi"}, header),
            "interrupt-header": Bad("POST", "/api/interrupt", 400, code, headers=header),
            "get-path": Bad("GET", f"/api/sessions/{bad}", 400, code),
            "delete-path": Bad("DELETE", f"/api/sessions/{bad}", 400, code),
            "events-path": Bad("GET", f"/api/sessions/{bad}/events", 400, code),
        }
        cases += [pytest.param(case, id=f"invalid-id-{name}-{at}") for at, case in where.items()]
    return cases


def _exact_body(total: int) -> bytes:
    """A chat body (no session id) of exactly `total` bytes."""
    head = b'{"message": "'
    tail = b'"}'
    return head + b"x" * (total - len(head) - len(tail)) + tail


SURROGATE_CHAT = b'{"message": "hi \\ud800 there", "session_id": "' + TARGET.encode() + b'"}'

BAD_REQUESTS = [
    # malformed JSON
    *(
        pytest.param(Bad("POST", path, 400, "invalid_json", raw), id=f"invalid-json-{name}")
        for name, path, raw in [
            ("chat-truncated", "/api/chat", b'{"message": "hi", "session_id": "@SID@"'),
            ("chat-garbage", "/api/chat", b"{bad"),
            ("chat-trailing-comma", "/api/chat", b'{"message": "hi", "session_id": "@SID@",}'),
            ("chat-single-quotes", "/api/chat", b"{'message': 'hi'}"),
            ("chat-invalid-utf8", "/api/chat", b'{"message": "\xff\xfe", "session_id": "@SID@"}'),
            ("system-truncated", "/api/system", b'{"message": "hi", "session_id": "@SID@"'),
            ("mcp-truncated", "/api/mcp-command", b'{"command": "get_network", "session_id": '),
            ("interrupt-truncated", "/api/interrupt", b'{"session_id": "@SID@"'),
        ]
    ),
    # wrong types
    *(
        pytest.param(Bad("POST", path, 422, "invalid_request", body), id=f"wrong-type-{name}")
        for name, path, body in [
            ("chat-message-int", "/api/chat", {"message": 5, "session_id": TARGET}),
            ("chat-message-list", "/api/chat", {"message": ["hi"], "session_id": TARGET}),
            ("chat-message-null", "/api/chat", {"message": None, "session_id": TARGET}),
            ("chat-message-object", "/api/chat", {"message": {"text": "hi"}}),
            ("chat-session-id-int", "/api/chat", {"message": "hi", "session_id": 5}),
            ("chat-body-array", "/api/chat", ["hi", TARGET]),
            ("chat-body-string", "/api/chat", "hi"),
            ("system-message-bool", "/api/system", {"message": True, "session_id": TARGET}),
            ("mcp-command-int", "/api/mcp-command", {"command": 1, "session_id": TARGET}),
            ("mcp-args-list", "/api/mcp-command", {"command": "set_network", "args": ["x"]}),
            ("interrupt-session-id-int", "/api/interrupt", {"session_id": 5}),
            ("interrupt-session-id-list", "/api/interrupt", {"session_id": [TARGET]}),
        ]
    ),
    # missing fields
    *(
        pytest.param(Bad("POST", path, 422, "invalid_request", body), id=f"missing-{name}")
        for name, path, body in [
            ("chat-everything", "/api/chat", {}),
            ("chat-message", "/api/chat", {"session_id": TARGET}),
            ("chat-body", "/api/chat", b""),
            ("system-message", "/api/system", {"session_id": TARGET}),
            ("mcp-command", "/api/mcp-command", {"args": {}, "session_id": TARGET}),
        ]
    ),
    # a set_network without a network: the command's own error, in its own shape too
    pytest.param(
        Bad(
            "POST",
            "/api/mcp-command",
            422,
            "invalid_request",
            {"command": "set_network", "args": {}, "session_id": TARGET},
            command_result=True,
        ),
        id="missing-set-network-args",
    ),
    # empty messages
    *(
        pytest.param(Bad("POST", path, 422, "empty_message", body), id=f"empty-{name}")
        for name, path, body in [
            ("chat", "/api/chat", {"message": "", "session_id": TARGET}),
            ("chat-spaces", "/api/chat", {"message": "   ", "session_id": TARGET}),
            ("chat-whitespace", "/api/chat", {"message": " \n\t\r ", "session_id": TARGET}),
            ("chat-no-id", "/api/chat", {"message": "\n"}),
            ("system", "/api/system", {"message": "", "session_id": TARGET}),
            ("system-whitespace", "/api/system", {"message": "\t \n", "session_id": TARGET}),
        ]
    ),
    # too long (characters, not bytes)
    *(
        pytest.param(Bad("POST", path, 422, "message_too_long", body), id=f"too-long-{name}")
        for name, path, body in [
            ("chat-8001", "/api/chat", {"message": "x" * 8001, "session_id": TARGET}),
            ("chat-8001-accented", "/api/chat", {"message": "é" * 8001, "session_id": TARGET}),
            ("chat-100k-no-id", "/api/chat", {"message": "x" * 100_000}),
            ("system-8001", "/api/system", {"message": "x" * 8001, "session_id": TARGET}),
            # a body of exactly MAX_BODY_BYTES is not too large; its message is too long
            ("chat-body-at-limit", "/api/chat", _exact_body(MAX_BODY)),
        ]
    ),
    # bodies over MAX_BODY_BYTES, declared (Content-Length) or streamed (chunked)
    *(
        pytest.param(
            Bad("POST", path, 413, "body_too_large", body, chunked=chunked),
            id=f"body-too-large-{name}-{'chunked' if chunked else 'content-length'}",
        )
        for chunked in (False, True)
        for name, path, body in [
            ("chat", "/api/chat", {"message": "x" * (MAX_BODY + 10), "session_id": TARGET}),
            ("chat-one-over", "/api/chat", _exact_body(MAX_BODY + 1)),
            ("system", "/api/system", {"message": "hi", "pad": "p" * MAX_BODY}),
            (
                "mcp",
                "/api/mcp-command",
                {"command": "get_network", "args": {"pad": "p" * MAX_BODY}, "session_id": TARGET},
            ),
            ("interrupt", "/api/interrupt", {"session_id": TARGET, "pad": "p" * MAX_BODY}),
        ]
    ),
    # a lone UTF-16 surrogate: valid JSON, but no text UTF-8 can carry; invalid, not a 500
    pytest.param(Bad("POST", "/api/chat", 422, None, SURROGATE_CHAT), id="lone-surrogate-chat"),
    pytest.param(
        Bad("POST", "/api/system", 422, None, b'{"message": "\\udfff"}'),
        id="lone-surrogate-system-no-id",
    ),
    # a resume position that is not a decimal seq
    *(
        pytest.param(
            Bad(
                "GET",
                f"/api/sessions/{TARGET}/events?last_event_id={raw}",
                400,
                "invalid_last_event_id",
            ),
            id=f"bad-last-event-id-query-{name}",
        )
        for name, raw in [("letters", "abc"), ("negative", "-1"), ("superscript-two", "%C2%B2")]
    ),
    pytest.param(
        Bad(
            "GET",
            f"/api/sessions/{TARGET}/events",
            400,
            "invalid_last_event_id",
            headers=(("last-event-id", "²".encode("latin-1")),),
        ),
        id="bad-last-event-id-header-superscript-two",
    ),
    # invalid session ids, wherever they come from
    *_bad_id_cases(),
    # unknown commands and networks: 400, the error envelope and `success: false`
    *(
        pytest.param(
            Bad("POST", "/api/mcp-command", 400, code, body, command_result=True),
            id=f"{code}-{name}",
        )
        for code, name, body in [
            ("unknown_command", "nope", {"command": "nope", "args": {}, "session_id": TARGET}),
            ("unknown_command", "empty", {"command": "", "session_id": TARGET}),
            ("unknown_command", "upper-case", {"command": "SET_NETWORK", "args": {}}),
            (
                "unknown_network",
                "mars",
                {"command": "set_network", "args": {"network": "mars"}, "session_id": TARGET},
            ),
            (
                "unknown_network",
                "plain-string",
                {"command": "set_network", "args": "mars", "session_id": TARGET},
            ),
        ]
    ),
    # reads and interrupt without any session id
    *(
        pytest.param(Bad(method, path, 404, "missing_session_id", body), id=f"no-id-{name}")
        for name, method, path, body in [
            ("interrupt-no-body", "POST", "/api/interrupt", None),
            ("interrupt-empty-object", "POST", "/api/interrupt", {}),
            ("interrupt-null", "POST", "/api/interrupt", b"null"),
            ("interrupt-null-id", "POST", "/api/interrupt", {"session_id": None}),
            ("state", "GET", "/api/state", None),
            ("state-other-param", "GET", "/api/state?id=" + TARGET, None),
            ("legacy-stream", "GET", "/api/chat/stream", None),
        ]
    ),
    # unknown routes and wrong methods
    *(
        pytest.param(Bad(method, path, 404, "not_found"), id=f"not-found-{method}-{path}")
        for method, path in [
            ("GET", "/nope"),
            ("POST", "/api/nope"),
            ("GET", f"/api/sessions/{TARGET}/nope"),
            ("GET", "/api/chat/stream/more"),
        ]
    ),
    *(
        pytest.param(
            Bad(method, path, 405, "method_not_allowed"), id=f"wrong-method-{method}-{path}"
        )
        for method, path in [
            ("GET", "/api/chat"),
            ("GET", "/api/system"),
            ("GET", "/api/mcp-command"),
            ("GET", "/api/interrupt"),
            ("PUT", "/api/sessions"),
            ("PATCH", "/api/sessions"),
            ("PUT", f"/api/sessions/{TARGET}"),
            ("POST", f"/api/sessions/{TARGET}/events"),
            ("DELETE", "/api/state"),
            ("DELETE", "/api/chat/stream"),
            ("POST", "/health"),
            ("POST", "/metrics"),
        ]
    ),
]


def check_bad_answer(case: Bad, answer: Answer) -> None:
    body = assert_envelope(answer, case.status, case.code, case.path)
    if case.command_result:
        assert body["success"] is False
        assert body["message"] == body["error"]["message"]
        assert body["data"] is None


@pytest.mark.parametrize("case", BAD_REQUESTS)
async def test_bad_input_gets_the_error_envelope_and_creates_nothing(
    client: httpx.AsyncClient, sid: str, case: Bad
) -> None:
    before = await read_metrics(client)
    check_bad_answer(case, await case.send(client, sid))
    after = await read_metrics(client)
    assert after[CREATED] == before[CREATED], "a bad request created a session"
    assert after[ACTIVE] == before[ACTIVE]
    assert (await client.get(f"/api/sessions/{sid}")).status_code == 404


async def test_a_barrage_of_bad_input_leaves_a_victim_session_and_the_gauge_alone(
    client: httpx.AsyncClient, sid: str
) -> None:
    async with open_sse(client, f"/api/sessions/{sid}/events") as reader:
        view = EventsView()
        view.apply(await reader.next())
        response = await client.post("/api/chat", json={"message": "keep me", "session_id": sid})
        assert response.status_code == 200
        await wait_for_agent_reply(reader, view, "You said: keep me")
    victim = (await client.get(f"/api/sessions/{sid}")).json()
    before = await read_metrics(client)

    server_errors = []
    for param in BAD_REQUESTS:
        (case,) = param.values
        try:
            answer = await case.send(client, sid)
        except httpx.TransportError as error:
            server_errors.append(f"{param.id}: connection failed: {error!r}")
        else:
            if answer.status >= 500:
                server_errors.append(f"{param.id}: {answer.status} {answer.body!r}")

    after = await read_metrics(client)
    state = await send(client, "GET", f"/api/sessions/{sid}")
    problems = [*server_errors]
    if state.status != 200:
        problems.append(f"the victim session now answers {state.status} {state.body!r}")
    elif state.json() != victim:
        problems.append(f"bad input changed the victim: {victim} became {state.json()}")
    if (after[ACTIVE], after[CREATED]) != (before[ACTIVE], before[CREATED]):
        problems.append(
            f"sessions active/created moved during the barrage: "
            f"{before[ACTIVE]}/{before[CREATED]} -> {after[ACTIVE]}/{after[CREATED]}"
        )
    assert not problems, "\n".join(problems)


async def test_messages_at_the_length_limit_are_accepted(client: httpx.AsyncClient) -> None:
    for text in ("x" * MAX_MESSAGE, "é" * MAX_MESSAGE):
        session_id = new_id("limit")
        response = await client.post("/api/chat", json={"message": text, "session_id": session_id})
        assert response.status_code == 200, response.text
        assert response.json()["messages"][0]["content"] == text


# ---- 2. reads and interrupt never create a session -----------------------------------

NOT_FOUND = "session_not_found"
READS = [
    pytest.param(Bad("GET", f"/api/state?session_id={TARGET}", 404, NOT_FOUND), id="state-query"),
    pytest.param(
        Bad("GET", "/api/state", 404, NOT_FOUND, headers=(("x-session-id", TARGET.encode()),)),
        id="state-header",
    ),
    pytest.param(Bad("GET", f"/api/sessions/{TARGET}", 404, NOT_FOUND), id="get-session"),
    pytest.param(
        Bad("POST", "/api/interrupt", 404, NOT_FOUND, {"session_id": TARGET}), id="interrupt-body"
    ),
    pytest.param(
        Bad("POST", "/api/interrupt", 404, NOT_FOUND, headers=(("x-session-id", TARGET.encode()),)),
        id="interrupt-header",
    ),
    pytest.param(Bad("DELETE", f"/api/sessions/{TARGET}", 404, NOT_FOUND), id="delete-session"),
]


@pytest.mark.parametrize("case", READS)
async def test_reads_and_interrupt_of_an_unknown_id_are_404_and_create_nothing(
    client: httpx.AsyncClient, sid: str, case: Bad
) -> None:
    before = await read_metrics(client)
    answer = await case.send(client, sid)
    assert_envelope(answer, case.status, case.code)
    assert sid not in answer.json()["error"]["message"], "the error repeats the full id"
    after = await read_metrics(client)
    assert after[ACTIVE] == before[ACTIVE]
    assert after[CREATED] == before[CREATED]
    assert (await client.get(f"/api/sessions/{sid}")).status_code == 404


async def test_a_web_page_on_another_origin_may_read_both_streams_and_their_errors(
    client: httpx.AsyncClient, sid: str
) -> None:
    """The streams are served ahead of the middleware stack; CORS must still apply."""
    page = {"Origin": "http://example.test:5173"}
    for path in (f"/api/sessions/{sid}/events", f"/api/chat/stream?session_id={sid}"):
        async with client.stream("GET", path, headers=page) as response:
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == "*"
            assert "x-session-id" in response.headers["access-control-expose-headers"].lower()
    refused = await send(client, "GET", "/api/sessions/not%20valid/events", headers=page)
    assert_envelope(refused, 400, "invalid_session_id")
    assert refused.headers["access-control-allow-origin"] == "*"
    missing = await send(client, "GET", "/api/chat/stream", headers=page)
    assert_envelope(missing, 404, "missing_session_id")


async def test_streams_on_an_unknown_id_wait_empty_until_a_write_creates_it(
    client: httpx.AsyncClient, sid: str
) -> None:
    before = await read_metrics(client)
    async with (
        open_sse(client, f"/api/sessions/{sid}/events") as typed,
        open_sse(client, f"/api/chat/stream?session_id={sid}") as legacy,
    ):
        snapshot = await typed.next()
        assert snapshot.event == "snapshot"
        assert snapshot.id == "0"
        empty = snapshot.json()
        assert (empty["session_id"], empty["seq"], empty["messages"]) == (sid, 0, [])
        assert empty["is_processing"] is False
        first = (await legacy.next()).json()
        assert (first["session_id"], first["seq"], first["messages"]) == (sid, 0, [])

        waiting = await read_metrics(client)
        assert waiting[ACTIVE] == before[ACTIVE], "a stream created a session"
        assert waiting[CREATED] == before[CREATED]
        assert (await client.get(f"/api/sessions/{sid}")).status_code == 404

        response = await client.post("/api/chat", json={"message": "wake up", "session_id": sid})
        assert response.status_code == 200
        view = EventsView()
        view.apply(snapshot)
        await wait_for_agent_reply(typed, view, "You said: wake up")
        assert view.contents() == [("user", "wake up"), ("agent", "You said: wake up")]
        state = await read_legacy_until(legacy, "You said: wake up")
        assert contents(state) == [("user", "wake up"), ("agent", "You said: wake up")]

    after = await read_metrics(client)
    assert after[CREATED] == before[CREATED] + 1
    assert after[ACTIVE] == before[ACTIVE] + 1


# ---- 3. session endpoints, ids in headers ---------------------------------------------


async def test_post_sessions_makes_a_new_empty_session_with_a_uuid4(
    client: httpx.AsyncClient,
) -> None:
    ids = []
    for _ in range(2):
        response = await client.post("/api/sessions")
        assert response.status_code == 201
        session_id = response.json()["session_id"]
        assert response.json() == {"session_id": session_id}
        assert response.headers["x-session-id"] == session_id
        assert_uuid4(session_id)
        ids.append(session_id)
    assert ids[0] != ids[1]
    for session_id in ids:
        state = (await client.get(f"/api/sessions/{session_id}")).json()
        assert state["session_id"] == session_id
        assert state["messages"] == []
        assert state["is_processing"] is False
        legacy = await client.get("/api/state", params={"session_id": session_id})
        assert legacy.json() == state


WRITES = {
    "chat": ("/api/chat", {"message": "no id here"}),
    "system": ("/api/system", {"message": "a note without id"}),
    "mcp-command": (
        "/api/mcp-command",
        {"command": "set_network", "args": {"network": "testnet"}},
    ),
}


@pytest.mark.parametrize("endpoint", list(WRITES))
async def test_a_write_without_any_id_creates_a_new_session_each_time(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    path, body = WRITES[endpoint]
    before = await read_metrics(client)
    responses = [await client.post(path, json=body) for _ in range(2)]
    ids = []
    for response in responses:
        assert response.status_code == 200, response.text
        session_id = response.headers["x-session-id"]
        assert_uuid4(session_id)
        ids.append(session_id)
        state = await client.get(f"/api/sessions/{session_id}")
        assert state.status_code == 200
        if endpoint != "mcp-command":
            assert contents(state.json())[0][1] == body["message"]
    assert ids[0] != ids[1]
    after = await read_metrics(client)
    assert after[CREATED] == before[CREATED] + 2
    for response, session_id in zip(responses, ids, strict=True):
        assert response.json().get("session_id") == session_id, (
            "the new session's id is not in the response body"
        )


async def test_the_x_session_id_header_selects_the_session_and_the_field_wins(
    client: httpx.AsyncClient,
) -> None:
    a, b = new_id("hdr-a"), new_id("hdr-b")
    response = await client.post(
        "/api/chat", json={"message": "via header"}, headers={"X-Session-Id": a}
    )
    assert response.status_code == 200
    assert response.json()["session_id"] == a
    assert response.headers["x-session-id"] == a
    state = await client.get("/api/state", headers={"X-Session-Id": a})
    assert state.json()["session_id"] == a
    assert contents(state.json())[0] == ("user", "via header")

    response = await client.post(
        "/api/system", json={"message": "field wins", "session_id": b}, headers={"X-Session-Id": a}
    )
    assert response.json()["session_id"] == b
    assert response.headers["x-session-id"] == b
    command = await client.post(
        "/api/mcp-command",
        json={"command": "get_network", "session_id": b},
        headers={"X-Session-Id": a},
    )
    assert command.headers["x-session-id"] == b

    state_b = await client.get("/api/state", params={"session_id": b}, headers={"X-Session-Id": a})
    assert state_b.json()["session_id"] == b
    assert contents(state_b.json())[0] == ("system", "field wins")
    state_a = (await client.get(f"/api/sessions/{a}")).json()
    assert "field wins" not in str(state_a["messages"])
    interrupted = await client.post("/api/interrupt", headers={"X-Session-Id": a})
    assert interrupted.status_code == 200
    assert interrupted.json()["session_id"] == a


async def test_the_default_session_id_serves_every_id_less_request(
    custom_client: httpx.AsyncClient,
) -> None:
    http = custom_client
    async with open_sse(http, "/api/chat/stream") as legacy:
        assert (await legacy.next()).json()["session_id"] == DEFAULT_ID
        for text in ("first", "second"):
            response = await http.post("/api/chat", json={"message": text})
            assert response.status_code == 200
            assert response.json()["session_id"] == DEFAULT_ID
            assert response.headers["x-session-id"] == DEFAULT_ID
            await read_legacy_until(legacy, f"You said: {text}")
        command = await http.post("/api/mcp-command", json={"command": "get_network"})
        assert command.headers["x-session-id"] == DEFAULT_ID

    state = (await http.get("/api/state")).json()
    assert state["session_id"] == DEFAULT_ID
    assert contents(state) == [
        ("user", "first"),
        ("agent", "You said: first"),
        ("user", "second"),
        ("agent", "You said: second"),
    ]
    interrupted = await http.post("/api/interrupt")
    assert interrupted.status_code == 200
    assert interrupted.json()["session_id"] == DEFAULT_ID
    created = await http.post("/api/sessions")
    assert created.status_code == 201
    assert_uuid4(created.json()["session_id"])


# ---- 4. delete -------------------------------------------------------------------------


async def test_delete_ends_both_streams_and_cancels_the_running_turn(
    custom_client: httpx.AsyncClient,
) -> None:
    http = custom_client
    sid = new_id("del")
    long_text = " ".join(f"word{i}" for i in range(400))  # a reply of about 4 s
    async with (
        open_sse(http, f"/api/sessions/{sid}/events") as typed,
        open_sse(http, f"/api/chat/stream?session_id={sid}") as legacy,
    ):
        await typed.next()
        await legacy.next()
        response = await http.post("/api/chat", json={"message": long_text, "session_id": sid})
        assert response.status_code == 200
        await typed.until(lambda event: event.event == "message.delta")
        running = await read_metrics(http)
        assert running[TURNS] >= 1

        deleted = await http.delete(f"/api/sessions/{sid}")
        assert deleted.status_code == 204
        assert deleted.content == b""

        rest = await typed.rest()
        assert rest, "no session.closed event"
        assert rest[-1].event == "session.closed"
        assert [e.event for e in rest].count("session.closed") == 1
        assert typed.ended
        await legacy.rest()
        assert legacy.ended

    gone = await send(http, "GET", f"/api/sessions/{sid}")
    assert_envelope(gone, 404, "session_not_found")
    after = await read_metrics(http)
    assert after[TURNS] == 0, "the deleted session's turn still runs"
    assert after[ACTIVE] == running[ACTIVE] - 1
    again = await send(http, "DELETE", f"/api/sessions/{sid}")
    assert_envelope(again, 404, "session_not_found")


# ---- 5. expiry -------------------------------------------------------------------------


async def await_eviction(server: RunningServer, http: httpx.AsyncClient, session_id: str) -> None:
    """Wait for sweeps ("sessions expired" log lines) until this session left memory.

    Eviction keeps the history on disk: the next read loads it into a fresh session,
    whose event log starts over (seq 0), unlike the one that stayed in memory.
    """

    async def loop() -> None:
        while True:
            index = len(server.log)
            state = await http.get(f"/api/sessions/{session_id}")
            assert state.status_code == 200, "eviction is not deletion"
            if state.json()["seq"] == 0:
                return
            await server.wait_for_log("sessions expired", after=index)

    await asyncio.wait_for(loop(), 10)


async def chat_until_answered(http: httpx.AsyncClient, session_id: str, text: str) -> None:
    """Give a session some history (a seq above 0) and wait until it is idle."""
    async with open_sse(http, f"/api/sessions/{session_id}/events") as reader:
        await reader.next()
        response = await http.post("/api/chat", json={"message": text, "session_id": session_id})
        assert response.status_code == 200
        await reader.until(lambda e: e.event == "state" and not e.json()["is_processing"])


async def test_an_idle_session_expires(expiry: RunningServer) -> None:
    async with own_client(expiry) as http:
        before = await read_metrics(http)
        sid = new_id("idle")
        await chat_until_answered(http, sid, "bye")
        index = len(expiry.log)
        await await_eviction(expiry, http, sid)
        await expiry.wait_for_log("sessions expired", after=index, timeout=0.1)
        state = (await http.get("/api/state", params={"session_id": sid})).json()
        assert [m["content"] for m in state["messages"]] == ["bye", "You said: bye"]
        after = await read_metrics(http)
        assert after[EXPIRED] >= before[EXPIRED] + 1  # (reading it loaded it again)


async def test_an_open_stream_keeps_its_session_until_it_closes(expiry: RunningServer) -> None:
    async with own_client(expiry) as http:
        watched = new_id("watched")
        await chat_until_answered(http, watched, "keep me")
        async with open_sse(http, f"/api/sessions/{watched}/events") as reader:
            await reader.next()
            other = new_id("other")
            await chat_until_answered(http, other, "let me go")
            await await_eviction(expiry, http, other)  # a sweep after `watched` was due
            kept = await http.get(f"/api/sessions/{watched}")
            assert kept.json()["seq"] > 0, "still the session in memory, never reloaded"
        before = await read_metrics(http)
        await await_eviction(expiry, http, watched)
        after = await read_metrics(http)
        assert after[EXPIRED] >= before[EXPIRED] + 1


# ---- 6. limits -------------------------------------------------------------------------


async def test_the_session_cap_refuses_new_sessions_with_retry_after(
    limited: RunningServer,
) -> None:
    async with own_client(limited) as http:
        ids = []
        for _ in range(3):
            response = await http.post("/api/sessions")
            assert response.status_code == 201
            ids.append(response.json()["session_id"])

        refusals = [
            await send(http, "POST", "/api/sessions"),
            await send(
                http,
                "POST",
                "/api/chat",
                json.dumps({"message": "hi", "session_id": new_id("over")}).encode(),
                {"content-type": "application/json"},
            ),
            await send(
                http,
                "POST",
                "/api/chat",
                b'{"message": "hi"}',
                {"content-type": "application/json"},
            ),
        ]
        for refusal in refusals:
            assert_envelope(refusal, 503, "too_many_sessions")
            assert refusal.headers["retry-after"].isdigit()
            assert int(refusal.headers["retry-after"]) >= 1

        async with open_sse(http, f"/api/sessions/{ids[0]}/events") as reader:
            view = EventsView()
            view.apply(await reader.next())
            response = await http.post("/api/chat", json={"message": "still", "session_id": ids[0]})
            assert response.status_code == 200
            await wait_for_agent_reply(reader, view, "You said: still")
        assert (await http.get(f"/api/sessions/{ids[1]}")).status_code == 200
        metrics = await read_metrics(http)
        assert metrics[ACTIVE] == 3

        assert (await http.delete(f"/api/sessions/{ids[2]}")).status_code == 204
        assert (await http.post("/api/sessions")).status_code == 201


async def test_a_third_stream_on_one_session_is_refused_with_retry_after(
    custom_client: httpx.AsyncClient,
) -> None:
    http = custom_client
    existing = (await http.post("/api/sessions")).json()["session_id"]
    for sid in (existing, new_id("waiting")):
        async with (
            open_sse(http, f"/api/sessions/{sid}/events") as typed,
            open_sse(http, f"/api/chat/stream?session_id={sid}") as legacy,
        ):
            await typed.next()
            await legacy.next()
            for path in (f"/api/sessions/{sid}/events", f"/api/chat/stream?session_id={sid}"):
                refusal = await send(http, "GET", path)
                assert_envelope(refusal, 503, "too_many_streams")
                assert refusal.headers["retry-after"].isdigit()
            # the two open streams still work
            response = await http.post(
                "/api/mcp-command",
                json={"command": "set_network", "args": {"network": "sepolia"}, "session_id": sid},
            )
            assert response.json()["success"] is True
            event = await typed.next()
            assert (event.event, event.json()["network"]) == ("state", "sepolia")


# ---- 7. networks -----------------------------------------------------------------------


async def command(
    http: httpx.AsyncClient, session_id: str, name: str, args: Any = None
) -> dict[str, Any]:
    response = await http.post(
        "/api/mcp-command", json={"command": name, "args": args, "session_id": session_id}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-session-id"] == session_id
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    assert isinstance(body["message"], str)
    return body


async def test_set_network_changes_only_its_own_session(custom_client: httpx.AsyncClient) -> None:
    http = custom_client
    a, b = new_id("net-a"), new_id("net-b")
    for sid in (a, b):
        assert (await command(http, sid, "get_network"))["data"] == {
            "network": "testnet",
            "chain_id": 31337,
            "currency": "ETH",
            "explorer_url": None,
        }
        # Asking makes no session; setting (even to the same network) does.
        assert (await http.get(f"/api/sessions/{sid}")).status_code == 404
        await command(http, sid, "set_network", {"network": "testnet"})
    async with (
        open_sse(http, f"/api/sessions/{a}/events") as stream_a,
        open_sse(http, f"/api/sessions/{b}/events") as stream_b,
    ):
        await stream_a.next()
        snapshot_b = await stream_b.next()

        result = await command(http, a, "set_network", {"network": "sepolia"})
        assert result["data"]["chain_id"] == 11155111
        assert result["data"]["network"] == "sepolia"
        event = await stream_a.next()
        assert event.event == "state"
        assert event.json()["network"] == "sepolia"
        assert (await http.get(f"/api/sessions/{a}")).json()["network"] == "sepolia"
        assert (await http.get(f"/api/sessions/{b}")).json()["network"] == "testnet"
        assert (await command(http, b, "get_network"))["data"]["network"] == "testnet"

        # b's stream saw nothing of a's change: the next event it gets is its own
        await command(http, b, "set_network", "sepolia")  # args as a plain name
        own: Event = await stream_b.next()
        assert own.event == "state"
        assert own.json()["network"] == "sepolia"
        assert int(own.id or -1) == int(snapshot_b.id or -1) + 1
        await command(http, b, "set_network", {"network": "testnet"})
        assert (await stream_b.next()).json()["network"] == "testnet"

    assert (await command(http, a, "get_network"))["data"] == {
        "network": "sepolia",
        "chain_id": 11155111,
        "currency": "SepoliaETH",
        "explorer_url": "https://sepolia.etherscan.io",
    }


async def test_list_networks_names_every_configured_network(
    custom_client: httpx.AsyncClient,
) -> None:
    listed = await command(custom_client, new_id("list"), "list_networks", {})
    assert sorted(listed["data"], key=lambda n: n["network"]) == [
        {
            "network": "sepolia",
            "chain_id": 11155111,
            "currency": "SepoliaETH",
            "explorer_url": "https://sepolia.etherscan.io",
        },
        {"network": "testnet", "chain_id": 31337, "currency": "ETH", "explorer_url": None},
    ]


def test_out_of_the_box_sessions_start_on_mainnet_among_the_public_networks() -> None:
    """With no NETWORKS set: the public networks by their usual names (each with its
    explorer and currency) and the local chain; a new session starts on mainnet."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.initial_network == "mainnet"
    chains = {name: network.chain_id for name, network in settings.networks.items()}
    assert chains == {
        "mainnet": 1,
        "sepolia": 11155111,
        "base": 8453,
        "arbitrum": 42161,
        "optimism": 10,
        "polygon": 137,
        "testnet": 31337,
    }
    public = [network for name, network in settings.networks.items() if name != "testnet"]
    assert all(n.rpc_url.startswith("https://") and n.explorer_url for n in public)
    assert settings.networks["polygon"].currency == "POL"
    assert settings.networks["base"].currency == "ETH"


# ---- 8. keep-alives and stream headers ------------------------------------------------


async def test_idle_streams_get_keep_alive_comments(custom_client: httpx.AsyncClient) -> None:
    http = custom_client
    sid = (await http.post("/api/sessions")).json()["session_id"]
    async with (
        open_commented_sse(http, f"/api/sessions/{sid}/events") as typed,
        open_commented_sse(http, f"/api/chat/stream?session_id={sid}") as legacy,
    ):
        assert (await typed.next()).event == "snapshot"
        await legacy.next()
        for reader in (typed, legacy):
            for _ in range(2):
                assert await reader.next_comment() == "keep-alive"


@pytest.mark.parametrize(
    "path", ["/api/sessions/{sid}/events", "/api/chat/stream?session_id={sid}"]
)
async def test_streams_are_not_cached_or_buffered_by_proxies(
    client: httpx.AsyncClient, sid: str, path: str
) -> None:
    async with open_sse(client, path.format(sid=sid)) as reader:
        assert reader.response.headers["cache-control"] == "no-cache"
        assert reader.response.headers["x-accel-buffering"] == "no"
        await reader.next()


# ---- 9. operations: metrics, docs, CLI ------------------------------------------------


async def test_metrics_count_sessions_streams_turns_and_events(
    client: httpx.AsyncClient, sid: str
) -> None:
    before = await read_metrics(client)
    for name in (ACTIVE, CREATED, EXPIRED, TURNS, EVENTS_SENT):
        assert name in before, f"{name} is missing from /metrics"
    async with (
        open_sse(client, f"/api/sessions/{sid}/events") as typed,
        open_sse(client, f"/api/chat/stream?session_id={sid}") as legacy,
    ):
        view = EventsView()
        view.apply(await typed.next())
        await legacy.next()
        during = await read_metrics(client)
        assert during[STREAMS_EVENTS] == before.get(STREAMS_EVENTS, 0) + 1
        assert during[STREAMS_LEGACY] == before.get(STREAMS_LEGACY, 0) + 1
        response = await client.post("/api/chat", json={"message": "count me", "session_id": sid})
        assert response.status_code == 200
        await wait_for_agent_reply(typed, view, "You said: count me")
        await read_legacy_until(legacy, "You said: count me")
    after = await read_metrics(client)
    assert after[CREATED] == before[CREATED] + 1
    assert after[ACTIVE] == before[ACTIVE] + 1
    assert after[EVENTS_SENT] >= before[EVENTS_SENT] + len(view.deltas) + 2


async def test_openapi_lists_every_endpoint_and_docs_are_served(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    expected = {
        ("get", "/health"),
        ("post", "/api/chat"),
        ("get", "/api/state"),
        ("get", "/api/chat/stream"),
        ("post", "/api/interrupt"),
        ("post", "/api/system"),
        ("post", "/api/mcp-command"),
        ("post", "/api/sessions"),
        ("get", "/api/sessions/{session_id}"),
        ("delete", "/api/sessions/{session_id}"),
        ("get", "/api/sessions/{session_id}/events"),
        ("get", "/metrics"),
    }
    listed = {(method, path) for path, methods in paths.items() for method in methods}
    assert expected <= listed, expected - listed
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "<html" in docs.text.lower()
    health = await client.get("/health")
    assert (health.status_code, health.text) == (200, "OK")


async def test_the_cli_serves_on_the_given_host_and_port() -> None:
    executable = Path(sys.executable).with_name("chatbot")
    assert executable.exists(), executable
    port = free_port()
    environment = {
        **os.environ,
        "LLM_PROVIDER": "scripted",
        "BACKEND_HOST": "0.0.0.0",
        "BACKEND_PORT": str(free_port()),  # the flags win over these
    }
    process = await asyncio.create_subprocess_exec(
        str(executable),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = process.stderr
    seen: list[bytes] = []

    async def ready() -> bytes:
        while line := await stderr.readline():
            seen.append(line)
            if READY_LINE in line:
                return line
        raise AssertionError("chatbot serve exited: " + b"".join(seen).decode(errors="replace"))

    try:
        line = await asyncio.wait_for(ready(), 30)
        assert f"127.0.0.1:{port}".encode() in line
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await http.get("/health")
            assert (health.status_code, health.text) == (200, "OK")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            _, rest = await asyncio.wait_for(process.communicate(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    # a graceful stop (uvicorn re-raises the signal once it has shut down)
    assert process.returncode in (0, -signal.SIGTERM)
    assert b"Application shutdown complete" in rest


# ---- 10. logs --------------------------------------------------------------------------


async def test_logs_never_contain_a_full_session_id(
    custom: RunningServer, expiry: RunningServer, limited: RunningServer
) -> None:
    # some traffic of its own, so that this test means something when run alone
    async with own_client(custom) as http:
        sid = new_id("log")
        async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
            view = EventsView()
            view.apply(await reader.next())
            await http.post("/api/chat", json={"message": "log me", "session_id": sid})
            await wait_for_agent_reply(reader, view, "You said: log me")
        created = (await http.post("/api/sessions")).json()["session_id"]
        unknown = new_id("unknown")
        for path in (f"/api/sessions/{unknown}", f"/api/state?session_id={unknown}"):
            assert (await http.get(path)).status_code == 404
        await http.delete(f"/api/sessions/{created}")
        index = len(custom.log)
        await http.delete(f"/api/sessions/{sid}")
        await custom.wait_for_log("session removed", after=index)

    long_ids = {session_id for session_id in USED_IDS if len(session_id) > 6}
    assert sid in long_ids
    assert created in long_ids
    for server in (custom, expiry, limited):
        text = server.log_text()
        leaked = sorted(session_id for session_id in long_ids if session_id in text)
        assert not leaked, f"full session ids in the log of {server.url}: {leaked}"


async def test_serving_beyond_this_machine_without_authentication_is_refused() -> None:
    """`--host 0.0.0.0` with no authentication: one clear line, exit 2, nothing served."""
    environment = server_environment(free_port())
    code, _, stderr = await run_chatbot("serve", "--host", "0.0.0.0", env=environment)
    assert code == 2
    assert "refusing to serve on 0.0.0.0" in stderr
    assert "ALLOW_ANONYMOUS_REMOTE=true" in stderr


async def test_serving_beyond_this_machine_can_be_allowed() -> None:
    """ALLOW_ANONYMOUS_REMOTE=true: the operator takes it on; the server answers."""
    async with (
        run_server("--host", "0.0.0.0", ALLOW_ANONYMOUS_REMOTE="true") as server,
        server.client() as client,
    ):
        assert (await client.get("/health")).text == "OK"


async def test_a_client_over_its_message_rate_gets_429_and_others_go_on() -> None:
    """RATE_LIMIT_MESSAGES per client address: the fourth message of three a minute is
    refused before any work, with Retry-After; another address still chats."""
    async with run_server(RATE_LIMIT_MESSAGES="3/minute") as server:
        async with server.client() as client:
            for index in range(3):
                body = {"message": "hello", "session_id": f"rl-{index}-{uuid.uuid4().hex[:6]}"}
                assert (await client.post("/api/chat", json=body)).status_code == 200
            sid = f"rl-over-{uuid.uuid4().hex[:6]}"
            over = await client.post("/api/system", json={"message": "note", "session_id": sid})
            assert over.status_code == 429, over.text
            assert over.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(over.headers["retry-after"]) <= 60
            assert (await client.get("/api/state", params={"session_id": sid})).status_code == 404
            metrics = (await client.get("/metrics")).text
            assert 'chatbot_rate_limited_total{limit="messages"} 1.0' in metrics
        elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with server.client(transport=elsewhere) as other:
            body = {"message": "hello", "session_id": f"rl-other-{uuid.uuid4().hex[:6]}"}
            assert (await other.post("/api/chat", json=body)).status_code == 200
