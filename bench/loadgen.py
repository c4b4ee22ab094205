"""A load generator on raw asyncio sockets, and the process readings benchmarks need.

httpx costs tens of microseconds per event, enough to make the client the bottleneck;
here a stream is one `asyncio.Protocol` that de-chunks the body, splits it into SSE
events and reads token stamps straight from the bytes. The scripted provider (and
every baseline) writes each token's emit time into the token as a 16-digit number of
microseconds since the epoch; a stamp larger than the last one seen on a stream is a
new token, which makes the count right even for streams that resend old text.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

STAMP = re.compile(rb"(?<![\w.])1\d{15}(?!\d)")  # not inside an id such as m_1234…
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def now_us() -> int:
    """Wall-clock microseconds since the epoch: the unit of the stamps."""
    return time.time_ns() // 1000


@dataclass
class Latencies:
    """Token latencies in microseconds, from each stamp to its receipt."""

    samples: list[int] = field(default_factory=list)

    def quantile_ms(self, q: float) -> float:
        """The q-quantile in milliseconds (nearest rank); NaN when empty."""
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    def p50_ms(self) -> float:
        return self.quantile_ms(0.50)

    def p99_ms(self) -> float:
        return self.quantile_ms(0.99)


class Stream(asyncio.Protocol):
    """One HTTP/1.1 request whose response body is an event stream, read until closed."""

    def __init__(
        self,
        latencies: Latencies | None,
        on_event: Callable[[Stream, bytes], None] | None,
    ) -> None:
        self.latencies = latencies
        self.on_event = on_event
        self.status = 0
        self.headers: dict[str, str] = {}
        self.bytes_received = 0
        self.events = 0
        self.tokens = 0
        self.last_stamp = 0
        self.last_event_id: str | None = None
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[None] = loop.create_future()
        self.first_event: asyncio.Future[int] = loop.create_future()
        self.first_token: asyncio.Future[int] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._token_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._raw = b""
        self._chunked = False
        self._chunk_left = 0
        self._body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if not self.head.done():
            self._raw += data
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return
            self._read_head(self._raw[:end])
            data, self._raw = self._raw[end + 4 :], b""
        self._body += self._dechunk(data) if self._chunked else data
        self._split_events()

    def _read_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.head.set_result(None)

    def _dechunk(self, data: bytes) -> bytes:
        out = bytearray()
        self._raw += data
        raw = self._raw
        position = 0
        while position < len(raw):
            if self._chunk_left:
                piece = raw[position : position + self._chunk_left]
                out += piece
                self._chunk_left -= len(piece)
                position += len(piece)
                continue
            line_end = raw.find(b"\r\n", position)
            if line_end < 0:
                break
            size_text = raw[position:line_end].split(b";")[0].strip()
            if not size_text:  # the CRLF that closes a chunk
                position = line_end + 2
                continue
            size = int(size_text, 16)
            if size == 0:
                position = len(raw)
                if self.transport is not None:
                    self.transport.close()
                break
            self._chunk_left = size
            position = line_end + 2
        self._raw = raw[position:]
        return bytes(out)

    def _split_events(self) -> None:
        body = self._body.replace(b"\r\n", b"\n") if b"\r" in self._body else self._body
        *events, self._body = body.split(b"\n\n")
        for event in events:
            if not event or all(line.startswith(b":") for line in event.split(b"\n")):
                continue  # a comment (keep-alive)
            self._count(event)

    def _count(self, event: bytes) -> None:
        received = now_us()
        self.events += 1
        if not self.first_event.done():
            self.first_event.set_result(received)
        if event.startswith(b"id:") or b"\nid:" in event:
            for line in event.split(b"\n"):
                if line.startswith(b"id:"):
                    self.last_event_id = line[3:].strip().decode()
        for match in STAMP.finditer(event):
            stamp = int(match.group())
            if stamp > self.last_stamp:
                self.last_stamp = stamp
                self.tokens += 1
                if not self.first_token.done():
                    self.first_token.set_result(received)
                if self.latencies is not None:
                    self.latencies.samples.append(received - stamp)
        if self._token_waiters:
            self._wake_token_waiters()
        if self.on_event is not None:
            self.on_event(self, event)

    def has_tokens(self, count: int) -> asyncio.Future[None]:
        """Resolves once `count` tokens have arrived."""
        waiter = asyncio.get_running_loop().create_future()
        self._token_waiters.append((count, waiter))
        self._wake_token_waiters()
        return waiter

    def _wake_token_waiters(self) -> None:
        waiting = []
        for count, waiter in self._token_waiters:
            if self.tokens >= count:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiting.append((count, waiter))
        self._token_waiters = waiting

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.head.done():
            self.head.set_exception(ConnectionError("closed before the response head"))
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        """Hang up."""
        if self.transport is not None:
            self.transport.close()


def _request_bytes(
    host: str, port: int, method: str, path: str, headers: dict[str, str] | None, body: bytes | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"content-length: {len(body)}")
        if not any(name.lower() == "content-type" for name in headers or {}):
            lines.append("content-type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def open_stream(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    latencies: Latencies | None = None,
    on_event: Callable[[Stream, bytes], None] | None = None,
) -> Stream:
    """Send one request on a new connection; return once the response head is in."""
    loop = asyncio.get_running_loop()
    transport, stream = await loop.create_connection(
        lambda: Stream(latencies, on_event), host, port
    )
    stream.transport = transport
    transport.write(_request_bytes(host, port, method, path, headers, body))
    await stream.head
    return stream


@dataclass
class Response:
    """A plain HTTP response, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection for plain requests, one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send a request and read its whole response (Content-Length or chunked)."""
        host, port = self.writer.get_extra_info("peername")[:2]
        body = orjson.dumps(json) if json is not None else None
        self.writer.write(_request_bytes(host, port, method, path, headers, body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        if fields.get("transfer-encoding", "").lower() == "chunked":
            content = bytearray()
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                content += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
            return Response(status, fields, bytes(content))
        length = int(fields.get("content-length", "0"))
        return Response(status, fields, await self.reader.readexactly(length))

    def close(self) -> None:
        """Hang up."""
        self.writer.close()


async def request(
    host: str,
    port: int,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """One request on a fresh connection."""
    connection = await Connection.open(host, port)
    try:
        return await connection.request(method, path, json=json, headers=headers)
    finally:
        connection.close()


# ---- the processes ----------------------------------------------------------------------


def raise_open_files_limit() -> int:
    """Lift this process's open-files limit to its hard limit; returns the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pin(pid: int, core: int) -> None:
    """Keep a process (0: this one) on one core, when the machine has it."""
    if core < (os.cpu_count() or 1):
        os.sched_setaffinity(pid, {core})


def proc_rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def proc_cpu(pid: int) -> float:
    """CPU seconds a process has used so far (user + system)."""
    return sum(proc_times(pid))


def proc_times(pid: int) -> tuple[float, float]:
    """CPU seconds a process has used so far: in its own code (user), in the kernel (system)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS
