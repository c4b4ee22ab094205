"""Frames go straight to uvicorn's socket when they can, and never out of order.

`direct_writer` reaches behind uvicorn's ASGI `send` (httptools' request cycle, its
transport and flow control). These tests run a real uvicorn on 127.0.0.1 so that an
upgrade which moves any of that fails here rather than quietly slowing every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import uvicorn
from starlette.types import Message, Receive, Scope, Send

from chatbot.api.stream import direct_writer
from chatbot.sessions.events import KEEPALIVE_FRAME, StreamKind, Subscriber

Handler = Callable[[Send], Awaitable[None]]


@contextlib.asynccontextmanager
async def uvicorn_serving(handler: Handler) -> AsyncIterator[int]:
    """uvicorn (uvloop's loop is the test's own; httptools) answering every GET with `handler`."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await handler(send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # clients may connect at once; uvicorn accepts them once it has started
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(app, http="httptools", lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def get(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
    return reader, writer


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """The body of a chunked response, decoded, up to its last chunk."""
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        body += await reader.readexactly(size)
        assert await reader.readexactly(2) == b"\r\n"
    assert await reader.readexactly(2) == b"\r\n"
    return bytes(body)


async def test_frames_written_directly_arrive_as_the_chunked_body() -> None:
    async def handler(send: Send) -> None:
        write = direct_writer(send)
        assert write is not None, "uvicorn's httptools send no longer exposes its transport"
        assert write(b"data: one\n\n")
        assert write(b"data: two\n\n")
        await send({"type": "http.response.body", "body": b"data: end\n\n", "more_body": False})
        assert not write(b"data: late\n\n"), "wrote after the response was complete"

    async with uvicorn_serving(handler) as port:
        reader, writer = await get(port)
        assert await read_chunked(reader) == b"data: one\n\ndata: two\n\ndata: end\n\n"
        writer.close()


async def test_a_full_socket_declines_and_send_finishes_in_order() -> None:
    """A client that stops reading fills the buffers; the writer then declines, not blocks."""
    frame = b"data: " + b"x" * 4090 + b"\n\n"
    written: list[int] = []

    async def handler(send: Send) -> None:
        write = direct_writer(send)
        assert write is not None
        while len(written) < 100_000 and write(frame):  # ~400 MB: far past any buffer
            written.append(1)
        assert len(written) < 100_000, "the writer never saw the socket's buffer fill"
        tail = b"data: tail\n\n"
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async with uvicorn_serving(handler) as port:
        # The handler writes in one step of the loop, so the client reads nothing before
        # the writer has declined.
        reader, writer = await get(port)
        body = await read_chunked(reader)
        assert body == frame * len(written) + b"data: tail\n\n"
        writer.close()


async def test_a_declined_frame_queues_and_later_frames_queue_behind_it() -> None:
    """Order is kept: once anything is queued, nothing skips ahead through the sink."""
    socket_bytes: list[bytes] = []
    accepting = True

    def sink(frame: bytes) -> bool:
        if accepting:
            socket_bytes.append(frame)
        return accepting

    subscriber = Subscriber("s", StreamKind.EVENTS, 100, lambda: b"snapshot")
    subscriber.sink = sink
    writer = asyncio.ensure_future(subscriber.next_batch())
    await asyncio.sleep(0)  # the writer parks, waiting
    subscriber.push(b"1")
    subscriber.keepalive()
    assert socket_bytes == [b"1", KEEPALIVE_FRAME]
    assert not writer.done()
    accepting = False
    subscriber.push(b"2")
    accepting = True
    subscriber.push(b"3")  # the sink would take it, but "2" is still queued
    assert socket_bytes == [b"1", KEEPALIVE_FRAME]
    assert await writer == b"23"
    subscriber.close()
    subscriber.push(b"4")
    assert await subscriber.next_batch() is None
    assert socket_bytes == [b"1", KEEPALIVE_FRAME]


async def test_no_direct_writer_behind_a_wrapped_send() -> None:
    captured: list[object] = []

    async def handler(send: Send) -> None:
        async def wrapped(message: Message) -> None:
            await send(message)

        captured.append(direct_writer(wrapped))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with uvicorn_serving(handler) as port:
        reader, writer = await get(port)
        await read_chunked(reader)
        writer.close()
    assert captured == [None]
