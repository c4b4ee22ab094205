"""Fake Anthropic and OpenAI servers that speak the real streaming wire formats.

Why a real HTTP server rather than a mock inside the SDK: the app under test runs as a
subprocess and reaches its model through `ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL`, the
official SDKs and pydantic-ai. Only bytes on a socket exercise all of that: SSE framing,
the SDKs' stream accumulators, the app's retrying transport, and what happens to an
in-flight stream when a user interrupts a turn (the fake sees the socket close).

How a test drives a fake:

    async with FakeLLM.start("anthropic") as fake:
        fake.script(ToolCall("get_balance", {"address": "0xabc"}), Reply(["It is ", "1 ETH"]))
        async with run_server(**fake.env()) as app:
            ...
            first, second = await fake.wait_requests(2)
            assert second.tool_results()[0].content == "..."

Each generation request (`POST /v1/messages`, `POST /v1/chat/completions`) takes one
response: from `fake.responder(body)` when that is set and returns one, else the next
scripted response, else `fake.default` (initially `Echo()`, which answers
"Echo: <last user text>"). Retries are requests too: an `Error(429)` followed by a
`Reply` is what a test scripts to see the app's retry succeed.

Everything observable is recorded on the fake (`requests`, per-request timings, frames
sent, disconnects), and every wait is event-driven with a timeout, so tests never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import socket
import time
import uuid
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias

import uvicorn

Kind: TypeAlias = Literal["anthropic", "openai"]

# Plain ASGI types, to avoid depending on a framework (or uvicorn's private `_types`).
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

# --------------------------------------------------------------------------------------------
# What a fake can answer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Error:
    """An HTTP error in the provider's own JSON shape.

    `type` and `message` default to what the real API says for `status`. `retry_after`
    (seconds) sets a `retry-after` header, written as an integer when it is one, because
    that is what real servers send and what strict parsers accept. `should_retry` sets the
    `x-should-retry` header that the official SDKs obey over their own status rules.
    """

    status: int = 500
    retry_after: float | None = None
    message: str | None = None
    type: str | None = None
    should_retry: bool | None = None


@dataclass(frozen=True)
class Reply:
    """A text answer streamed as these chunks, `delay` seconds before each one.

    A slow, long reply (`Reply(["tick "] * 200, delay=0.05)`) is how a test keeps a model
    stream open long enough to interrupt it. `then_error` ends the stream with an in-stream
    error event after the chunks (the provider failing mid-answer) instead of a clean stop;
    a non-streaming request gets that error as its HTTP response.
    """

    text_chunks: Sequence[str] | str = ("Hello!",)
    delay: float = 0.0
    then_error: Error | None = None

    def __post_init__(self) -> None:
        # A bare string is one chunk, not a sequence of one-character chunks.
        chunks = self.text_chunks
        object.__setattr__(
            self, "text_chunks", (chunks,) if isinstance(chunks, str) else tuple(chunks)
        )

    @classmethod
    def words(cls, text: str, delay: float = 0.0) -> Reply:
        """`text` streamed one word (with its trailing space) per chunk."""
        return cls(_word_chunks(text), delay=delay)

    @property
    def text(self) -> str:
        return "".join(self.text_chunks)


@dataclass(frozen=True)
class ToolCall:
    """The model calling one tool, its JSON arguments streamed in `arg_chunks` pieces.

    Splitting the arguments is the point: clients must join partial JSON before parsing.
    `call_id` defaults to a fresh provider-style id (`toolu_...` / `call_...`).
    Mind `text_before` with pydantic-ai: `Agent.run_stream` takes the first text as the final
    answer and never runs the tool; apps that walk `Agent.iter` nodes do run it.
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    text_before: Sequence[str] | str | None = None
    call_id: str | None = None
    delay: float = 0.0
    arg_chunks: int = 4


@dataclass(frozen=True)
class ToolCalls:
    """Several tool calls in one response (parallel tool use), after optional text."""

    calls: Sequence[ToolCall]
    text_before: Sequence[str] | str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Echo:
    """A reply computed from the request: `prefix` + the last user text, in `chunks` pieces.

    The default response, so an unscripted fake still answers something a test can predict.
    """

    prefix: str = "Echo: "
    chunks: int = 3
    delay: float = 0.0


LLMResponse: TypeAlias = Reply | ToolCall | ToolCalls | Error | Echo
# Picks the response for a request body; None falls back to the script, then the default.
Responder: TypeAlias = Callable[
    [dict[str, Any]], LLMResponse | Awaitable[LLMResponse | None] | None
]


# --------------------------------------------------------------------------------------------
# What a fake records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolResult:
    """A tool result the client sent back, in a provider-neutral form."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(eq=False)
class RecordedRequest:
    """One request as it arrived, and what became of its response.

    The monotonic timestamps let a test bound latencies (e.g. "the model stream was closed
    within 1 s of the interrupt") without sleeping.
    """

    kind: Kind
    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]
    received_at: float
    response: LLMResponse | None = None
    status: int | None = None
    frames_total: int = 0
    frames_sent: int = 0
    completed_at: float | None = None
    disconnected_at: float | None = None
    ended_at: float | None = None

    @property
    def api_key(self) -> str | None:
        """The key the client authenticated with: `x-api-key`, else a Bearer token."""
        if self.kind == "anthropic" and "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered to the model, in either provider's tool schema."""
        names: list[str] = []
        for tool in self.body.get("tools") or []:
            function = tool.get("function") if self.kind == "openai" else None
            name = (function or tool).get("name")
            if isinstance(name, str):
                names.append(name)
        return names

    @property
    def last_user_text(self) -> str:
        return last_user_text(self.body)

    def tool_results(self) -> list[ToolResult]:
        """Tool results in the conversation sent (Anthropic blocks or OpenAI `tool` turns)."""
        results: list[ToolResult] = []
        for message in self.messages:
            if self.kind == "openai":
                if message.get("role") == "tool":
                    results.append(
                        ToolResult(
                            str(message.get("tool_call_id")), _text_of(message.get("content"))
                        )
                    )
                continue
            content = message.get("content")
            if message.get("role") != "user" or not isinstance(content, list):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    results.append(
                        ToolResult(
                            str(block.get("tool_use_id")),
                            _text_of(block.get("content")),
                            bool(block.get("is_error", False)),
                        )
                    )
        return results

    @property
    def finished(self) -> bool:
        """The handler is done with this request, whichever way it ended."""
        return self.ended_at is not None


def last_user_text(body: Mapping[str, Any]) -> str:
    """The text of the latest user message that has any, in either provider's format.

    User turns that only carry tool results (Anthropic) are skipped, so on a tool round
    trip this is still the user's question, not an empty string.
    """
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text_of(message.get("content"), skip_tool_results=True)
            if text:
                return text
    return ""


def _text_of(content: Any, *, skip_tool_results: bool = False) -> str:
    """Plain text of a message content: a string, or a list of text (or nested) blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif block.get("type") == "tool_result" and not skip_tool_results:
                parts.append(_text_of(block.get("content")))
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Shared plumbing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    name: str
    call_id: str
    args: Mapping[str, Any]
    pieces: tuple[str, ...]


@dataclass(frozen=True)
class _Plan:
    """A resolved response, provider-neutral: what the encoders turn into bytes."""

    text_chunks: tuple[str, ...]
    calls: tuple[_Call, ...]
    delay: float
    then_error: Error | None

    @property
    def text(self) -> str:
        return "".join(self.text_chunks)

    @property
    def paced_steps(self) -> int:
        """How many delays a stream of this plan waits: one per text chunk or args piece."""
        return len(self.text_chunks) + sum(len(call.pieces) for call in self.calls)

    @property
    def output_tokens(self) -> int:
        args = sum(len(piece) for call in self.calls for piece in call.pieces)
        return max(1, _estimate_tokens(self.text) + math.ceil(args / 4))


@dataclass(frozen=True)
class _Frame:
    """One SSE event; `paced` frames wait the response's delay before they are sent."""

    data: bytes
    paced: bool = False


def _split(text: str, pieces: int) -> tuple[str, ...]:
    """`text` in up to `pieces` non-empty parts, at least two when it is long enough."""
    if not text:
        return ()
    count = max(1, min(len(text), max(pieces, 2)))
    size = math.ceil(len(text) / count)
    return tuple(text[i : i + size] for i in range(0, len(text), size))


def _word_chunks(text: str) -> tuple[str, ...]:
    chunks: list[str] = []
    for word in text.split(" "):
        if chunks and not word:
            chunks[-1] += " "
        else:
            chunks.append(word + " ")
    if chunks:
        chunks[-1] = chunks[-1][:-1]
    return tuple(chunk for chunk in chunks if chunk)


def _chunks_of(text: Sequence[str] | str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return (text,) if isinstance(text, str) else tuple(text)


def _estimate_tokens(text: str) -> int:
    """About four characters a token: close enough for usage fields and count_tokens."""
    return math.ceil(len(text) / 4)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


class _QuietServer(uvicorn.Server):
    """uvicorn without its SIGINT/SIGTERM handlers: Ctrl-C must still stop pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# --------------------------------------------------------------------------------------------
# The fake server
# --------------------------------------------------------------------------------------------


class FakeLLM:
    """A provider API on 127.0.0.1, served by uvicorn in the current event loop.

    Subclasses supply the wire format; `FakeLLM.start(kind)` picks one. Running in the
    test's own loop (not a thread) keeps the state plain: handlers and tests share
    `requests`, the script queue and the events without locks.
    """

    kind: ClassVar[Kind]
    generation_path: ClassVar[str]
    models: ClassVar[tuple[str, ...]]

    def __init__(self, *, require_key: str | None = None) -> None:
        self.require_key: str | None = require_key
        self.responder: Responder | None = None
        self.default: LLMResponse = Echo()
        # Generation requests only, in arrival order (rejected ones included).
        self.requests: list[RecordedRequest] = []
        # Everything else: count_tokens, model lists, unknown paths.
        self.side_requests: list[RecordedRequest] = []
        self.disconnects: list[float] = []
        self.disconnected = asyncio.Event()
        # Exceptions raised by `responder`; re-raised when the `start()` block exits.
        self.failures: list[BaseException] = []
        self._queue: deque[LLMResponse] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._stops: set[asyncio.Event] = set()
        self._closing = False
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, kind: Kind | None = None, *, require_key: str | None = None
    ) -> AsyncIterator[FakeLLM]:
        """Serve a fake of `kind` (default: this subclass's) until the block exits.

        A responder that raised makes the exit raise too, so a broken test helper cannot
        hide behind the 500 the client saw.
        """
        if kind is None and cls is FakeLLM:
            raise TypeError("FakeLLM.start needs a kind: 'anthropic' or 'openai'")
        fake_class = _KINDS[kind] if kind is not None else cls
        fake = fake_class(require_key=require_key)
        await fake.listen()
        try:
            yield fake
        finally:
            await fake.aclose()
        if fake.failures:
            raise RuntimeError(f"the fake's responder raised {len(fake.failures)}x") from (
                fake.failures[0]
            )

    async def listen(self) -> None:
        """Bind an ephemeral port and serve; for fixtures that cannot use `start()`."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            lifespan="off",
            ws="none",
            proxy_headers=False,
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=3,
            # Longer than any test's pause, so a pooled connection is never closed under a client.
            timeout_keep_alive=120,
            backlog=1024,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        # uvicorn offers no startup event; its `started` flag flips within a few ms.
        while not self._server.started:
            if self._task.done():
                sock.close()
                self._task.result()
                raise RuntimeError("the fake LLM server stopped before it started")
            await asyncio.sleep(0.005)

    async def aclose(self) -> None:
        """End open streams cleanly, then stop the server."""
        self._closing = True
        for stop in list(self._stops):
            stop.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._wake()

    # -- configuration ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What the official SDK takes as `base_url` for this provider."""
        return self.url

    def env(self, api_key: str = "sk-test-fake") -> dict[str, str]:
        """Environment for `run_server(**fake.env())`: provider, base URL and API key."""
        prefix = self.kind.upper()
        return {
            "LLM_PROVIDER": self.kind,
            f"{prefix}_BASE_URL": self.base_url,
            f"{prefix}_API_KEY": api_key,
            # Each test scripts its requests one by one; a title request after the first
            # reply would take one of them (tests/test_titles.py turns it on).
            "LLM_TITLES": "false",
        }

    def script(self, *responses: LLMResponse) -> None:
        """Queue responses; each generation request takes the next one."""
        self._queue.extend(responses)

    @property
    def pending(self) -> int:
        """Scripted responses not yet taken."""
        return len(self._queue)

    def reset(self) -> None:
        """Forget the script, settings and records, for a fake shared between tests."""
        self._queue.clear()
        self.responder = None
        self.default = Echo()
        self.require_key = None
        self.requests.clear()
        self.side_requests.clear()
        self.disconnects.clear()
        self.disconnected.clear()
        self.failures.clear()

    # -- observation -------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Generation responses still being produced (streams open, delays running)."""
        return sum(1 for r in self.requests if not r.finished)

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Until `predicate()` holds; it is re-checked whenever the fake's state changes."""

        async def check() -> None:
            while not predicate():
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

        try:
            await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"fake {self.kind}: no {what} within {timeout}s "
                f"({len(self.requests)} requests, {len(self.disconnects)} disconnects, "
                f"{self.in_flight} in flight, {self.pending} scripted left)"
            ) from None

    async def wait_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """The first `count` generation requests, once they have arrived."""
        await self.wait_for(lambda: len(self.requests) >= count, timeout, f"{count} requests")
        return self.requests[:count]

    async def wait_disconnect(self, timeout: float = 5.0, *, count: int = 1) -> float:
        """When (`time.monotonic()`) the `count`-th unfinished response lost its client."""
        await self.wait_for(
            lambda: len(self.disconnects) >= count, timeout, f"{count} client disconnects"
        )
        return sorted(self.disconnects)[count - 1]

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- wire format: supplied by each provider -----------------------------------------------

    def _validate(self, body: dict[str, Any]) -> str | None:
        """Why the real API would reject this body with a 400, or None."""
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        return None

    def _new_call_id(self) -> str:
        raise NotImplementedError

    def _error_body(self, status: int, error: Error) -> dict[str, Any]:
        raise NotImplementedError

    def _request_id_header(self) -> tuple[bytes, bytes]:
        raise NotImplementedError

    def _stream_frames(self, plan: _Plan, body: dict[str, Any]) -> list[_Frame]:
        raise NotImplementedError

    def _message(self, plan: _Plan, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _side_route(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """JSON for a non-generation endpoint this provider has, or None for a 404."""
        raise NotImplementedError

    def _key_ok(self, request: RecordedRequest) -> bool:
        return self.require_key is None or request.api_key == self.require_key

    # -- ASGI ----------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        body: dict[str, Any] = {}
        malformed = False
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                malformed = True
            else:
                malformed = not isinstance(parsed, dict)
                body = parsed if isinstance(parsed, dict) else {}
        method: str = scope["method"]
        path: str = scope["path"].rstrip("/") or "/"
        record = RecordedRequest(
            kind=self.kind,
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            raw=bytes(raw),
            body=body,
            received_at=time.monotonic(),
        )
        generation = method == "POST" and path == self.generation_path
        (self.requests if generation else self.side_requests).append(record)
        self._wake()
        try:
            if not self._key_ok(record):
                await self._send_error(send, record, Error(401))
            elif malformed:
                await self._send_error(
                    send, record, Error(400, message="The request body is not valid JSON.")
                )
            elif generation:
                await self._generate(record, receive, send)
            else:
                await self._side(record, send)
        finally:
            record.ended_at = time.monotonic()
            self._wake()

    async def _side(self, record: RecordedRequest, send: Send) -> None:
        answer = self._side_route(record.method, record.path, record.body)
        if answer is None:
            message = f"Not found: {record.method} {record.path}"
            await self._send_error(send, record, Error(404, message=message))
        else:
            await self._send_json(send, record, 200, answer)

    async def _generate(self, record: RecordedRequest, receive: Receive, send: Send) -> None:
        problem = self._validate(record.body)
        if problem is not None:
            await self._send_error(send, record, Error(400, message=problem))
            return
        try:
            response = await self._choose(record.body)
        except Exception as exc:
            self.failures.append(exc)
            error = Error(500, message=f"fake responder raised {exc!r}", should_retry=False)
            await self._send_error(send, record, error)
            return
        record.response = response
        if isinstance(response, Error):
            await self._send_error(send, record, response)
            return
        plan = self._plan(response, record.body)
        if record.stream:
            await self._send_stream(record, receive, send, plan)
        else:
            await self._send_message(record, receive, send, plan)

    async def _choose(self, body: dict[str, Any]) -> LLMResponse:
        if self.responder is not None:
            chosen = self.responder(body)
            if inspect.isawaitable(chosen):
                chosen = await chosen
            if chosen is not None:
                return chosen
        if self._queue:
            return self._queue.popleft()
        return self.default

    def _plan(self, response: LLMResponse, body: dict[str, Any]) -> _Plan:
        if isinstance(response, Error):
            raise TypeError("an Error has no body to stream")
        if isinstance(response, Echo):
            text = response.prefix + last_user_text(body)
            return _Plan(_split(text, response.chunks), (), response.delay, None)
        if isinstance(response, Reply):
            return _Plan(tuple(response.text_chunks), (), response.delay, response.then_error)
        calls = (response,) if isinstance(response, ToolCall) else tuple(response.calls)
        planned = tuple(
            _Call(
                call.name,
                call.call_id or self._new_call_id(),
                dict(call.args),
                _split(json.dumps(dict(call.args)), call.arg_chunks),
            )
            for call in calls
        )
        return _Plan(_chunks_of(response.text_before), planned, response.delay, None)

    # -- sending -------------------------------------------------------------------------------

    def _headers(self, content_type: bytes) -> list[tuple[bytes, bytes]]:
        return [(b"content-type", content_type), self._request_id_header()]

    async def _send_json(
        self,
        send: Send,
        record: RecordedRequest,
        status: int,
        payload: dict[str, Any],
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        record.status = status
        data = _json(payload)
        headers = [
            *self._headers(b"application/json"),
            (b"content-length", str(len(data)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data, "more_body": False})
        record.completed_at = time.monotonic()

    async def _send_error(self, send: Send, record: RecordedRequest, error: Error) -> None:
        extra: list[tuple[bytes, bytes]] = []
        if error.retry_after is not None:
            extra.append((b"retry-after", _retry_after_value(error.retry_after).encode()))
        if error.should_retry is not None:
            extra.append((b"x-should-retry", b"true" if error.should_retry else b"false"))
        await self._send_json(
            send, record, error.status, self._error_body(error.status, error), extra
        )

    @contextlib.asynccontextmanager
    async def _watching(
        self, record: RecordedRequest, receive: Receive
    ) -> AsyncIterator[tuple[asyncio.Event, Callable[[], None]]]:
        """While a response is produced: an event set when the client goes (or we close).

        uvicorn reports a closed socket as `http.disconnect` from `receive()`, at once,
        without waiting for the next write to fail; that is what lets a fake notice an
        interrupt between two slow chunks. The same message also comes after a complete
        response, so the caller marks the response done before its last write.
        """
        stop = asyncio.Event()
        done = False

        def mark_done() -> None:
            nonlocal done
            done = True

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not done:
                        now = time.monotonic()
                        record.disconnected_at = now
                        self.disconnects.append(now)
                        self.disconnected.set()
                        stop.set()
                        self._wake()
                    return

        self._stops.add(stop)
        if self._closing:
            stop.set()
        watcher = asyncio.create_task(watch())
        try:
            yield stop, mark_done
        finally:
            self._stops.discard(stop)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _send_stream(
        self, record: RecordedRequest, receive: Receive, send: Send, plan: _Plan
    ) -> None:
        frames = self._stream_frames(plan, record.body)
        record.frames_total = len(frames)
        record.status = 200
        headers = [
            *self._headers(b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        async with self._watching(record, receive) as (stop, mark_done):
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for frame in frames:
                if frame.paced and plan.delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), plan.delay)
                else:
                    # Let the disconnect watcher run even when nothing is paced.
                    await asyncio.sleep(0)
                if stop.is_set():
                    break
                await send({"type": "http.response.body", "body": frame.data, "more_body": True})
                record.frames_sent += 1
                self._wake()
            if record.disconnected_at is None:
                # Finished, or the fake is closing: end the chunked body properly either way.
                mark_done()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                if record.frames_sent == record.frames_total:
                    record.completed_at = time.monotonic()

    async def _send_message(
        self, record: RecordedRequest, receive: Receive, send: Send, plan: _Plan
    ) -> None:
        # No stream to pace, so the whole answer arrives after the time the stream would take.
        total_delay = plan.delay * plan.paced_steps
        if total_delay > 0:
            async with self._watching(record, receive) as (stop, mark_done):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), total_delay)
                if stop.is_set() and record.disconnected_at is not None:
                    return
                mark_done()
                await self._send_message_now(record, send, plan)
        else:
            await self._send_message_now(record, send, plan)

    async def _send_message_now(self, record: RecordedRequest, send: Send, plan: _Plan) -> None:
        if plan.then_error is not None:
            record.response = plan.then_error
            await self._send_error(send, record, plan.then_error)
        else:
            await self._send_json(send, record, 200, self._message(plan, record.body))


# --------------------------------------------------------------------------------------------
# Anthropic Messages API
# --------------------------------------------------------------------------------------------

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    529: ("overloaded_error", "Overloaded"),
}


class FakeAnthropic(FakeLLM):
    """`POST /v1/messages` (+ `count_tokens`, `GET /v1/models`) as Anthropic documents them.

    pydantic-ai calls the beta endpoint (`/v1/messages?beta=true`); the query string is
    recorded and otherwise ignored, as the wire format is the same.
    """

    kind: ClassVar[Kind] = "anthropic"
    generation_path: ClassVar[str] = "/v1/messages"
    models: ClassVar[tuple[str, ...]] = ("claude-sonnet-4-5", "claude-haiku-4-5")

    def _validate(self, body: dict[str, Any]) -> str | None:
        problem = super()._validate(body)
        if problem is None and not isinstance(body.get("max_tokens"), int):
            problem = "max_tokens: Field required"
        return problem

    def _new_call_id(self) -> str:
        return f"toolu_{uuid.uuid4().hex[:24]}"

    def _request_id_header(self) -> tuple[bytes, bytes]:
        return (b"request-id", f"req_{uuid.uuid4().hex[:24]}".encode())

    def _error_body(self, status: int, error: Error) -> dict[str, Any]:
        default_type, default_message = _ANTHROPIC_ERRORS.get(
            status,
            ("api_error", "Internal server error.")
            if status >= 500
            else ("invalid_request_error", "Invalid request."),
        )
        return {
            "type": "error",
            "error": {
                "type": error.type or default_type,
                "message": error.message or default_message,
            },
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
        }

    def _usage(self, body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self._input_tokens(body),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        }

    @staticmethod
    def _input_tokens(body: dict[str, Any]) -> int:
        parts = [body.get("system"), body.get("messages"), body.get("tools")]
        return max(1, _estimate_tokens(json.dumps([p for p in parts if p])))

    @staticmethod
    def _stop_reason(plan: _Plan) -> str:
        return "tool_use" if plan.calls else "end_turn"

    def _blocks(self, plan: _Plan) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if plan.text_chunks or not plan.calls:
            blocks.append({"type": "text", "text": plan.text})
        for call in plan.calls:
            blocks.append(
                {"type": "tool_use", "id": call.call_id, "name": call.name, "input": call.args}
            )
        return blocks

    def _message_skeleton(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }

    def _message(self, plan: _Plan, body: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._message_skeleton(body),
            "content": self._blocks(plan),
            "stop_reason": self._stop_reason(plan),
            "usage": self._usage(body, plan.output_tokens),
        }

    def _stream_frames(self, plan: _Plan, body: dict[str, Any]) -> list[_Frame]:
        def event(name: str, paced: bool = False, **fields: Any) -> _Frame:
            data = _json({"type": name, **fields})
            return _Frame(b"event: " + name.encode() + b"\ndata: " + data + b"\n\n", paced)

        start = {**self._message_skeleton(body), "usage": self._usage(body, 1)}
        frames = [event("message_start", message=start)]
        index = 0
        if plan.text_chunks or not plan.calls:
            frames.append(
                event("content_block_start", index=0, content_block={"type": "text", "text": ""})
            )
            frames.append(event("ping"))
            for chunk in plan.text_chunks:
                delta = {"type": "text_delta", "text": chunk}
                frames.append(event("content_block_delta", True, index=0, delta=delta))
            frames.append(event("content_block_stop", index=0))
            index = 1
        for call in plan.calls:
            block = {"type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}
            frames.append(event("content_block_start", index=index, content_block=block))
            if index == 0:
                frames.append(event("ping"))
            # The real API opens every tool_use block with an empty partial_json.
            for piece in ("", *call.pieces):
                delta = {"type": "input_json_delta", "partial_json": piece}
                frames.append(event("content_block_delta", bool(piece), index=index, delta=delta))
            frames.append(event("content_block_stop", index=index))
            index += 1
        if plan.then_error is not None:
            error = plan.then_error
            frames.append(event("error", error=self._error_body(error.status, error)["error"]))
            return frames
        frames.append(
            event(
                "message_delta",
                delta={"stop_reason": self._stop_reason(plan), "stop_sequence": None},
                usage={"output_tokens": plan.output_tokens},
            )
        )
        frames.append(event("message_stop"))
        return frames

    def _side_route(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if method == "POST" and path == "/v1/messages/count_tokens":
            return {"input_tokens": self._input_tokens(body)}
        if method == "GET" and path == "/v1/models":
            data = [
                {
                    "type": "model",
                    "id": model,
                    "display_name": model,
                    "created_at": "2025-01-01T00:00:00Z",
                }
                for model in self.models
            ]
            return {
                "data": data,
                "has_more": False,
                "first_id": self.models[0],
                "last_id": self.models[-1],
            }
        return None


# --------------------------------------------------------------------------------------------
# OpenAI Chat Completions API
# --------------------------------------------------------------------------------------------

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "not_found", "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class FakeOpenAI(FakeLLM):
    """`POST /v1/chat/completions` and `GET /v1/models`, as OpenAI serves them."""

    kind: ClassVar[Kind] = "openai"
    generation_path: ClassVar[str] = "/v1/chat/completions"
    models: ClassVar[tuple[str, ...]] = ("gpt-4o", "gpt-4o-mini")

    @property
    def base_url(self) -> str:
        # The OpenAI SDK appends `/chat/completions` to the base URL, so the `/v1` is ours.
        return f"{self.url}/v1"

    def _new_call_id(self) -> str:
        return f"call_{uuid.uuid4().hex[:24]}"

    def _request_id_header(self) -> tuple[bytes, bytes]:
        return (b"x-request-id", f"req_{uuid.uuid4().hex}".encode())

    def _error_body(self, status: int, error: Error) -> dict[str, Any]:
        default_type, code, default_message = _OPENAI_ERRORS.get(
            status,
            ("server_error", None, "Server error.")
            if status >= 500
            else ("invalid_request_error", None, "Invalid request."),
        )
        return {
            "error": {
                "message": error.message or default_message,
                "type": error.type or default_type,
                "param": None,
                "code": code,
            }
        }

    @staticmethod
    def _input_tokens(body: dict[str, Any]) -> int:
        parts = [body.get("messages"), body.get("tools")]
        return max(1, _estimate_tokens(json.dumps([p for p in parts if p])))

    def _usage(self, plan: _Plan, body: dict[str, Any]) -> dict[str, Any]:
        prompt = self._input_tokens(body)
        completion = plan.output_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish_reason(plan: _Plan) -> str:
        return "tool_calls" if plan.calls else "stop"

    def _envelope(
        self, body: dict[str, Any], completion_id: str, created: int, object_: str
    ) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": object_,
            "created": created,
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
        }

    def _message(self, plan: _Plan, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.text if plan.text_chunks or not plan.calls else None,
            "refusal": None,
            "annotations": [],
        }
        if plan.calls:
            message["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": "".join(call.pieces)},
                }
                for call in plan.calls
            ]
        envelope = self._envelope(
            body, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), "chat.completion"
        )
        return {
            **envelope,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish_reason(plan),
                }
            ],
            "usage": self._usage(plan, body),
            "service_tier": "default",
        }

    def _stream_frames(self, plan: _Plan, body: dict[str, Any]) -> list[_Frame]:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        envelope = self._envelope(
            body, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), "chat.completion.chunk"
        )

        def chunk(delta: dict[str, Any], finish: str | None = None, paced: bool = False) -> _Frame:
            payload: dict[str, Any] = {
                **envelope,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                payload["usage"] = None
            return _Frame(b"data: " + _json(payload) + b"\n\n", paced)

        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames += [chunk({"content": text}, paced=True) for text in plan.text_chunks]
        for index, call in enumerate(plan.calls):
            opening = {
                "index": index,
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            frames.append(chunk({"tool_calls": [opening]}))
            for piece in call.pieces:
                delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                frames.append(chunk(delta, paced=True))
        if plan.then_error is not None:
            error = self._error_body(plan.then_error.status, plan.then_error)
            frames.append(_Frame(b"data: " + _json(error) + b"\n\n"))
            return frames
        frames.append(chunk({}, self._finish_reason(plan)))
        if include_usage:
            usage = {**envelope, "choices": [], "usage": self._usage(plan, body)}
            frames.append(_Frame(b"data: " + _json(usage) + b"\n\n"))
        frames.append(_Frame(b"data: [DONE]\n\n"))
        return frames

    def _side_route(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if method == "GET" and path == "/v1/models":
            data = [
                {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "openai"}
                for model in self.models
            ]
            return {"object": "list", "data": data}
        return None


_KINDS: dict[Kind, type[FakeLLM]] = {"anthropic": FakeAnthropic, "openai": FakeOpenAI}
