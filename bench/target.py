"""Servers under measurement: each its own process, pinned to its own core.

The server gets core 0 and the load generator core 1, so neither steals the other's
time; RSS and CPU are read from /proc, so any server can be measured the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.loadgen import Connection, pin, proc_cpu, proc_rss

ROOT = Path(__file__).resolve().parents[1]
SERVER_CORE = 0
CLIENT_CORE = 1
HOST = "127.0.0.1"


def free_port() -> int:
    """A port the kernel just handed out and released."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Target:
    """A running server process."""

    name: str
    pid: int
    port: int
    host: str = HOST

    def rss(self) -> int:
        """Its resident memory now, in bytes."""
        return proc_rss(self.pid)

    def cpu(self) -> float:
        """CPU seconds it has used so far."""
        return proc_cpu(self.pid)

    async def connect(self) -> Connection:
        """A keep-alive connection for plain requests."""
        return await Connection.open(self.host, self.port)


def ours_command(port: int, module: str = "chatbot") -> list[str]:
    """Our server, as `make run` starts it (or through a bench launcher `module`)."""
    return [sys.executable, "-m", module, "serve", "--host", HOST, "--port", str(port)]


def baseline_command(name: str, port: int) -> list[str]:
    """One of bench/baselines/, run as a module."""
    return [sys.executable, "-m", f"bench.baselines.{name}", "--host", HOST, "--port", str(port)]


def ours_env(tokens_per_second: float, reply: str, **extra: str) -> dict[str, str]:
    """Settings for our server: scripted model, no tool servers, a database of its own."""
    database = Path(tempfile.mkdtemp(prefix="chatbot-bench-")) / "bench.db"
    return {
        "LLM_PROVIDER": "scripted",
        "SCRIPTED_REPLY": reply,
        "SCRIPTED_TOKENS_PER_SECOND": str(tokens_per_second),
        "MCP_CONFIG": str(ROOT / "tests" / "no-mcp.json"),
        "DATABASE_URL": f"sqlite:///{database}",
        "LOG_LEVEL": "warning",
        "MAX_SESSIONS": "200000",
        "MAX_STREAMS": "30000",
        "MAX_MESSAGE_LENGTH": "100000",
        "RATE_LIMIT_MESSAGES": "",  # the load generator is one client sending thousands
        "MAX_STREAMS_PER_PRINCIPAL": "1000000",  # … and holding thousands of streams
        **extra,
    }


@contextlib.asynccontextmanager
async def running(name: str, command: list[str], env: dict[str, str]) -> AsyncIterator[Target]:
    """Start a server on core 0, wait until `/health` answers, stop it afterwards."""
    port = int(command[command.index("--port") + 1])
    # A file, not a pipe: a chatty server never blocks on it.
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            preexec_fn=_server_limits,
        )
        target = Target(name, process.pid, port)
        try:
            await _wait_healthy(target, process, log)
            yield target
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


def _server_limits() -> None:
    from bench.loadgen import raise_open_files_limit

    raise_open_files_limit()
    pin(0, SERVER_CORE)


async def _wait_healthy(
    target: Target, process: asyncio.subprocess.Process, log: IO[bytes]
) -> None:
    for _ in range(600):
        if process.returncode is not None:
            log.seek(0)
            error = log.read().decode(errors="replace")
            raise RuntimeError(f"{target.name} exited at start-up:\n{error[-2000:]}")
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            connection = await target.connect()
            try:
                if (await connection.request("GET", "/health")).status == 200:
                    return
            finally:
                connection.close()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{target.name} did not answer /health within 30 s")
