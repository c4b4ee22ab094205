"""The real server under test: `python -m chatbot serve` on 127.0.0.1, an ephemeral port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_LINE = b"Uvicorn running on"
CHATBOT = [sys.executable, "-m", "chatbot"]


def free_port() -> int:
    """A port the kernel just handed out and released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """A server process and what the tests need to reach it."""

    url: str
    process: asyncio.subprocess.Process
    log: list[bytes] = field(default_factory=list)
    _logged: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, line: bytes) -> None:
        """Keep a log line and wake whoever waits for one."""
        self.log.append(line)
        self._logged.set()

    async def wait_for_log(self, text: str, *, after: int = 0, timeout: float = 15.0) -> str:
        """The first log line from index `after` on that contains `text`, once it is written."""

        async def scan() -> str:
            index = after
            while True:
                while index < len(self.log):
                    line = self.log[index].decode(errors="replace")
                    index += 1
                    if text in line:
                        return line
                self._logged.clear()
                await self._logged.wait()

        return await asyncio.wait_for(scan(), timeout)

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        """An HTTP client for this server (a real socket: SSE is not buffered)."""
        return httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(15.0), **kwargs)  # type: ignore[arg-type]

    def log_text(self) -> str:
        """What the server logged so far."""
        return b"".join(self.log).decode(errors="replace")


def server_environment(port: int, **env: str) -> dict[str, str]:
    """The environment of a test server on `port`, with these settings on top."""
    folder = tempfile.mkdtemp(prefix="chatbot-test-")
    return {
        **os.environ,
        "BACKEND_HOST": "127.0.0.1",
        "BACKEND_PORT": str(port),
        "LLM_PROVIDER": "scripted",
        # The local chain only: the default networks are public ones, on the internet.
        "NETWORKS": '{"testnet": {"chain_id": 31337, "rpc_url": "http://127.0.0.1:8545"}}',
        "DEFAULT_NETWORK": "testnet",
        # No tool servers unless a test asks for them: faster, and nothing shared.
        "MCP_CONFIG": str(Path(__file__).parent / "no-mcp.json"),
        # Every test talks from 127.0.0.1: one shared budget would trip them.
        "RATE_LIMIT_MESSAGES": "",
        "MAX_STREAMS_PER_PRINCIPAL": "100000",
        # A database (and docs index) of its own, unless the test passes one.
        "DATABASE_URL": f"sqlite:///{folder}/chatbot.db",
        "DOCS_INDEX": f"{folder}/docs-index.sqlite",
        **env,
    }


async def run_chatbot(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    """Run `chatbot ARGS` until it exits: its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *CHATBOT,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@asynccontextmanager
async def run_server(*args: str, **env: str) -> AsyncIterator[RunningServer]:
    """Start `chatbot serve ARGS` with these settings, wait until it listens, stop it afterwards."""
    port = free_port()
    environment = server_environment(port, **env)
    process = await asyncio.create_subprocess_exec(
        *CHATBOT,
        "serve",
        *args,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    server = RunningServer(url=f"http://127.0.0.1:{port}", process=process)
    assert process.stderr is not None
    stderr = process.stderr

    async def ready() -> None:
        while line := await stderr.readline():
            server.record(line)
            if READY_LINE in line:
                return
        raise RuntimeError("server exited before listening:\n" + server.log_text())

    await asyncio.wait_for(ready(), timeout=30)

    async def drain() -> None:
        while line := await stderr.readline():
            server.record(line)

    drainer = asyncio.create_task(drain())
    try:
        yield server
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await drainer
