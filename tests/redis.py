"""A real, private redis-server for the cluster tests: Debian's binary, a temp dir, a free port.

`async with run_redis() as r:` starts `redis-server` on 127.0.0.1 with no persistence and
yields it once it answers; `r.stop()` and `r.start()` take it down and bring it back on the
same port (empty: nothing is saved), for the tests that outlive a Redis restart. Tests share
one server and keep apart by key prefix. The binary comes from Debian's `redis-server`
package, which `make test` installs.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio
import redis.exceptions

from chatbot.launch import redis_command
from tests.server import free_port


def _find_server() -> str | None:
    found = shutil.which("redis-server")
    if found is None and Path("/usr/bin/redis-server").is_file():
        found = "/usr/bin/redis-server"
    return found


REDIS_SERVER = _find_server()
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (Debian's redis-server: make test)"
)

# Seconds a start may take before it counts as failed.
START_TIMEOUT = 10.0


@dataclass
class Redis:
    """A private redis-server and what tests need to reach it."""

    url: str
    port: int
    work_dir: Path
    log_file: Path
    running: bool = False
    _process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start(self) -> None:
        """Start the server on its port; returns once it answers there."""
        assert REDIS_SERVER is not None, "redis-server is not installed"
        # A throwaway server needs no persistence; --dir keeps any stray file out of the cwd.
        command = redis_command(REDIS_SERVER, self.port, self.work_dir)
        # Output goes to a file, not a pipe: nobody has to drain it, and it outlives restarts.
        with self.log_file.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                cwd=self.work_dir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        self.running = True
        try:
            await self._wait_until_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_until_ready(self) -> None:
        # redis-server announces readiness only in its log; an answer on the port is the signal.
        process = self._process
        assert process is not None
        client = redis.asyncio.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(
                        f"redis-server exited ({process.returncode}) before answering"
                        f"\n--- server log:\n{self.log_tail()}"
                    )
                try:
                    # The process id tells this server from another one that holds the port.
                    info = await client.info("server")
                    if info.get("process_id") == process.pid:
                        return
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer within {START_TIMEOUT:.0f} s"
                        f"\n--- server log:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """SIGTERM; returns once the server has exited (clients are disconnected)."""
        process, self._process = self._process, None
        self.running = False
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()

    def log_text(self) -> str:
        """What the server logged so far (all starts)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server logged."""
        return "\n".join(self.log_text().splitlines()[-lines:])


@asynccontextmanager
async def run_redis() -> AsyncIterator[Redis]:
    """Start and yield a private redis-server on a free port; stop it and delete its dir after."""
    base = Path(tempfile.mkdtemp(prefix="chatbot-redis-"))
    port = free_port()
    server = Redis(
        url=f"redis://127.0.0.1:{port}/0",
        port=port,
        work_dir=base,
        log_file=base / "redis.log",
    )
    try:
        await server.start()
        yield server
    finally:
        try:
            await server.stop()
        finally:
            await asyncio.to_thread(shutil.rmtree, base, ignore_errors=True)
