"""Baseline: the ceiling, i.e. the least work Python can do to serve these streams.

No framework: one `asyncio.Protocol` per connection on uvloop, with just enough HTTP/1.1
parsing (request line, headers, a Content-Length body, keep-alive) for the few
endpoints. A stream's response has no chunked encoding: after its head the body is the
event stream itself until the connection closes. Each event is serialized once, with
orjson, into its finished SSE frame, and those same bytes are written to every
subscriber's transport; nothing else runs per event or per stream. One loop-wide timer
sends the keep-alive comment to all streams every 15 s; a subscriber whose unsent bytes
pass 1 MiB is dropped. A small per-session ring of frames serves `Last-Event-ID`.

Run from the repository root: `python -m bench.baselines.raw_ceiling --port 8103`.
Endpoints: GET /health, POST /api/chat, POST /api/interrupt,
GET /api/sessions/{session_id}/events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import deque
from typing import Any, cast

import orjson
import uvloop

from bench.baselines.script import reply_template, tokens, tokens_per_second

KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keep-alive\n\n"
RING_SIZE = 1024
MAX_UNSENT = 1 << 20
MAX_HEAD = 1 << 16
EVENTS_PREFIX, EVENTS_SUFFIX = "/api/sessions/", "/events"
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"x-accel-buffering: no\r\nconnection: close\r\n\r\n"
)
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 409: b"Conflict"}


class Session:
    __slots__ = ("replies", "ring", "seq", "subscribers", "task")

    def __init__(self) -> None:
        self.seq = 0
        self.ring: deque[tuple[int, bytes]] = deque(maxlen=RING_SIZE)
        self.subscribers: set[asyncio.Transport] = set()
        self.replies = 0
        self.task: asyncio.Task[None] | None = None

    def publish(self, event: bytes, data: dict[str, str]) -> None:
        """Serialize one event once and write the same bytes to every subscriber."""
        self.seq += 1
        frame = b"id: %d\nevent: %s\ndata: %s\n\n" % (self.seq, event, orjson.dumps(data))
        self.ring.append((self.seq, frame))
        slow = []
        for transport in self.subscribers:
            transport.write(frame)
            if transport.get_write_buffer_size() > MAX_UNSENT:
                slow.append(transport)
        for transport in slow:
            transport.abort()


sessions: dict[str, Session] = {}
streams: set[asyncio.Transport] = set()


def get_or_create(session_id: str) -> Session:
    session = sessions.get(session_id)
    if session is None:
        session = sessions[session_id] = Session()
    return session


async def run_turn(session: Session, message_id: str, text: str) -> None:
    status = "interrupted"
    try:
        session.publish(b"message.created", {"id": message_id, "sender": "agent"})
        async for token in tokens(reply_template().replace("{message}", text), tokens_per_second()):
            session.publish(b"message.delta", {"id": message_id, "delta": token})
        status = "done"
    finally:
        session.publish(b"message.completed", {"id": message_id, "status": status})


def read_json(body: bytes, with_message: bool) -> tuple[str, str] | None:
    """`(session_id, message)` from a request body, or None when it is not valid."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(request, dict):
        return None
    session_id, message = request.get("session_id"), request.get("message", "")
    if not isinstance(session_id, str) or not isinstance(message, str):
        return None
    if with_message and "message" not in request:
        return None
    return session_id, message


def keep_alive(loop: asyncio.AbstractEventLoop) -> None:
    for transport in streams:
        transport.write(KEEPALIVE)
    loop.call_later(KEEPALIVE_SECONDS, keep_alive, loop)


class Http(asyncio.Protocol):
    """One client connection: plain requests until it turns into an event stream."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, so cast, not check.
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None and self.transport is not None:
            self.session.subscribers.discard(self.transport)
            streams.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.session is not None:
            return  # a stream: nothing more to read
        self.buffer += data
        assert self.transport is not None
        while self.session is None and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            try:
                lines = self.buffer[:end].decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length < 0:
                    raise ValueError(length)
            except ValueError:
                self.respond(400, {"error": "bad request"}, close=True)
                return
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = (
                self.buffer[end + 4 : end + 4 + length],
                self.buffer[end + 4 + length :],
            )
            self.handle(method, target.partition("?")[0], headers, body)
        if len(self.buffer) > MAX_HEAD:
            self.transport.close()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        close = headers.get("connection", "").lower() == "close"
        if method == "GET" and path.startswith(EVENTS_PREFIX) and path.endswith(EVENTS_SUFFIX):
            self.subscribe(path[len(EVENTS_PREFIX) : -len(EVENTS_SUFFIX)], headers)
        elif method == "GET" and path == "/health":
            self.respond(200, b"OK", close)
        elif method == "POST" and path in ("/api/chat", "/api/interrupt"):
            fields = read_json(body, path == "/api/chat")
            if fields is None:
                self.respond(400, {"error": "bad request"}, close)
                return
            session, text = get_or_create(fields[0]), fields[1]
            busy = session.task is not None and not session.task.done()
            if path == "/api/interrupt":
                if busy and session.task is not None:
                    session.task.cancel()
                self.respond(200, {"success": True}, close)
            elif busy:
                self.respond(409, {"error": {"code": "session_busy"}}, close)
            else:
                session.replies += 1
                turn = run_turn(session, f"m{session.replies}", text)
                session.task = asyncio.get_running_loop().create_task(turn)
                self.respond(200, {"success": True}, close)
        else:
            self.respond(404, {"error": "not found"}, close)

    def subscribe(self, session_id: str, headers: dict[str, str]) -> None:
        assert self.transport is not None
        self.session = session = get_or_create(session_id)
        last = headers.get("last-event-id", "")
        after = int(last) if last.isdigit() else session.seq
        self.transport.write(STREAM_HEAD + b"".join(f for seq, f in session.ring if seq > after))
        session.subscribers.add(self.transport)
        streams.add(self.transport)

    def respond(self, status: int, content: Any, close: bool = False) -> None:
        assert self.transport is not None
        body = content if isinstance(content, bytes) else orjson.dumps(content)
        kind = b"text/plain" if isinstance(content, bytes) else b"application/json"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n%s"
            % (status, REASONS[status], kind, len(body), b"connection: close\r\n" * close, body)
        )
        if close:
            self.transport.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, host, port, backlog=4096)
    loop.call_later(KEEPALIVE_SECONDS, keep_alive, loop)
    print("ready", flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8103)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
