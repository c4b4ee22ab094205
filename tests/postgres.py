"""A real, private Postgres cluster for the store tests: Debian's binaries, a temp dir, a free port.

`async with run_postgres() as pg:` runs initdb, starts the cluster on 127.0.0.1 and creates the
database `chat` (user `chat`, trust auth); `pg.stop()` and `pg.start()` take it down and bring
the same data back on the same port, for the tests that outlive a database restart. The
binaries come from Debian's `postgresql` package, which `make test` installs.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.server import free_port


def _newest_bin() -> Path | None:
    versions = [
        p
        for p in Path("/usr/lib/postgresql").glob("*/bin")
        if p.parent.name.replace(".", "", 1).isdigit() and (p / "initdb").is_file()
    ]
    # "9.6" < "15" as numbers, not as strings.
    return max(versions, key=lambda p: float(p.parent.name), default=None)


POSTGRES_BIN = _newest_bin()
needs_postgres = pytest.mark.skipif(
    POSTGRES_BIN is None, reason="Postgres is not installed (Debian's postgresql: make test)"
)

USER = "chat"
DATABASE = "chat"
# A throwaway cluster needs no crash safety; without the disk syncs it writes faster.
SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
)


@dataclass
class Postgres:
    """A running private cluster and what tests need to reach it."""

    url: str
    host: str
    port: int
    data_dir: Path
    log_file: Path
    running: bool = False

    async def start(self) -> None:
        """Start this cluster again on its port; returns once it accepts connections."""
        socket_dir = shlex.quote(str(self.data_dir.parent))
        options = f"-p {self.port} -k {socket_dir} {SERVER_OPTIONS}"
        await _run(
            self,
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "start",
            as_owner=True,
        )
        self.running = True

    async def stop(self) -> None:
        """Fast shutdown (clients are disconnected); returns once the server has exited."""
        await _run(
            self, "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", as_owner=True
        )
        self.running = False

    async def execute(self, sql: str) -> None:
        """Run SQL (several statements allowed) in autocommit mode."""
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(sql)

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one query."""
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            cursor = await conn.execute(sql)
            return await cursor.fetchall()

    def log_text(self) -> str:
        """What the server logged so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _as_owner(args: list[str]) -> list[str]:
    # Postgres refuses to run as root; the cluster belongs to the `postgres` user then.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


async def _run(pg: Postgres, program: str, *args: str, as_owner: bool = False) -> None:
    """Run a Postgres program; on failure, RuntimeError with its output and the server log."""
    assert POSTGRES_BIN is not None, "Postgres is not installed"
    command = [str(POSTGRES_BIN / program), *args]
    # PGHOST, PGDATABASE and friends would point the client programs elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # Output goes to a file, not a pipe: the postmaster that `pg_ctl start` leaves running
    # can inherit a pipe (it does under uvloop), and a pipe read to its end never ends then.
    with tempfile.TemporaryFile() as output:
        process = await asyncio.create_subprocess_exec(
            *(_as_owner(command) if as_owner else command),
            cwd=pg.data_dir.parent,  # the caller's cwd may be closed to the postgres user
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await asyncio.wait_for(process.wait(), timeout=60)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"{program} timed out\n--- server log:\n{pg.log_text()}") from None
        output.seek(0)
        printed = output.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} failed ({process.returncode}):\n"
            f"{printed}--- server log:\n{pg.log_text()}"
        )


@asynccontextmanager
async def run_postgres() -> AsyncIterator[Postgres]:
    """Create, start and yield a private cluster with database `chat`; stop and delete it after."""
    base = Path(tempfile.mkdtemp(prefix="chatbot-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
    port = free_port()
    pg = Postgres(
        url=f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}",
        host="127.0.0.1",
        port=port,
        data_dir=base / "data",
        log_file=base / "postgres.log",
    )
    try:
        # --no-sync: a throwaway cluster needs no crash safety; skipping the sync starts it sooner.
        await _run(
            pg,
            "initdb",
            "-D",
            str(pg.data_dir),
            "-A",
            "trust",
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            as_owner=True,
        )
        await pg.start()
        await _run(pg, "createdb", "-h", pg.host, "-p", str(port), "-U", USER, DATABASE)
        yield pg
    finally:
        try:
            if pg.running:
                await pg.stop()
        finally:
            await asyncio.to_thread(shutil.rmtree, base, ignore_errors=True)


@asynccontextmanager
async def fresh_database(pg: Postgres, name: str) -> AsyncIterator[str]:
    """An empty database of its own on the cluster, dropped afterwards; its URL."""
    await pg.execute(f"CREATE DATABASE {name}")
    try:
        yield pg.url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        # FORCE: a failed test may leave a store connected.
        await pg.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
