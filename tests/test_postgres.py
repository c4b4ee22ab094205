"""Postgres as operators run it: several servers on one database, an outage, bad settings,
and the `chatbot db` commands. The durability tests (test_durability.py) run on it too."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.postgres import Postgres, needs_postgres, run_postgres
from tests.server import RunningServer, free_port, run_chatbot, run_server, server_environment
from tests.sse import is_idle_state, open_sse

pytestmark = needs_postgres

QUICK_EVICTION = {"SESSION_TIMEOUT_SECONDS": "0.3", "CLEANUP_INTERVAL_SECONDS": "0.2"}


async def chat(server: RunningServer, sid: str, text: str) -> None:
    """Send a message through `server` and wait until its reply is complete."""
    async with server.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as reader:
        await reader.next()
        response = await http.post("/api/chat", json={"message": text, "session_id": sid})
        assert response.status_code == 200, response.text
        await reader.until(is_idle_state)


async def contents(server: RunningServer, sid: str) -> list[str]:
    async with server.client() as http:
        response = await http.get("/api/state", params={"session_id": sid})
    assert response.status_code == 200, response.text
    return [m["content"] for m in response.json()["messages"]]


async def evicted(server: RunningServer) -> None:
    """Wait until `server` has evicted an idle session (which writes it out first)."""
    await server.wait_for_log("sessions expired", after=len(server.log))


async def test_two_servers_on_one_database_share_every_session(postgres_url: str) -> None:
    sid = "shared-by-two"
    env = {"DATABASE_URL": postgres_url, "SCRIPTED_TOKENS_PER_SECOND": "0", **QUICK_EVICTION}
    async with run_server(**env) as first, run_server(**env) as second:
        await chat(first, sid, "hello from the first")
        await evicted(first)
        assert await contents(second, sid) == [
            "hello from the first",
            "You said: hello from the first",
        ]

        await chat(second, sid, "and from the second")
        await evicted(second)
        assert await contents(first, sid) == [  # loaded again, with the other's turn
            "hello from the first",
            "You said: hello from the first",
            "and from the second",
            "You said: and from the second",
        ]
    # Their logs, side by side, say which server wrote each line.
    workers = [{json.loads(line)["worker"] for line in server.log} for server in (first, second)]
    assert all(len(names) == 1 for names in workers)
    assert workers[0] != workers[1]


# ---- an outage --------------------------------------------------------------------------


@pytest.fixture
async def own_cluster() -> AsyncIterator[Postgres]:
    """A cluster this test may stop and start without disturbing the shared one."""
    async with run_postgres() as running:
        yield running


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "backend_unavailable"
    assert response.headers["retry-after"].isdigit()


async def test_while_postgres_is_down_writes_get_503_and_nothing_acknowledged_is_lost(
    own_cluster: Postgres,
) -> None:
    sid = "outage"
    env = {"DATABASE_URL": own_cluster.url, "SCRIPTED_TOKENS_PER_SECOND": "0"}
    async with run_server(**env) as app, app.client() as http:
        await chat(app, sid, "before the outage")
        await own_cluster.stop()

        first = await http.post("/api/chat", json={"message": "during", "session_id": sid})
        assert_unavailable(first)
        for request in (
            http.post("/api/chat", json={"message": "still down?", "session_id": sid}),
            http.post("/api/system", json={"message": "a note", "session_id": sid}),
            http.post("/api/sessions"),
            http.get("/api/state", params={"session_id": "never-loaded"}),
        ):
            assert_unavailable(await request)
        # What is in memory can still be read.
        assert (await contents(app, sid))[:2] == [
            "before the outage",
            "You said: before the outage",
        ]

        seen = len(app.log)
        await own_cluster.start()
        await app.wait_for_log("is back", after=seen, timeout=30)
        await chat(app, sid, "after the outage")

    async with run_server(**env) as restarted:
        stored = await contents(restarted, sid)
    acknowledged = ["before the outage", "after the outage"]
    assert [text for text in stored if text in acknowledged] == acknowledged
    assert "You said: after the outage" in stored
    assert "still down?" not in stored  # refused before anything changed


# ---- settings that cannot work ----------------------------------------------------------


async def start_with(url: str) -> tuple[int, str]:
    """Run `chatbot serve` with this DATABASE_URL until it exits; its code and output."""
    code, stdout, stderr = await run_chatbot(
        "serve", env=server_environment(free_port(), DATABASE_URL=url)
    )
    return code, stdout + stderr


@pytest.fixture
async def password_user(postgres_server: Postgres) -> AsyncIterator[str]:
    """A role that must log in with its password (the shared cluster trusts everyone else)."""
    hba = postgres_server.data_dir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text("host all pw_user 127.0.0.1/32 scram-sha-256\n" + original)
    await postgres_server.execute("CREATE ROLE pw_user LOGIN PASSWORD 'right-password'")
    await postgres_server.execute("SELECT pg_reload_conf()")
    try:
        yield "pw_user"
    finally:
        hba.write_text(original)
        await postgres_server.execute("SELECT pg_reload_conf()")
        await postgres_server.execute("DROP ROLE pw_user")


def assert_one_clear_line(code: int, output: str, names: list[str]) -> None:
    """Exit code not 0, one line that names what is wrong, no traceback, no password."""
    assert code != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("chatbot: cannot open the database")
    for name in names:
        assert name in lines[0]
    assert "hunter2" not in output
    assert "Traceback" not in output


async def test_an_unknown_scheme_stops_the_start_in_one_clear_line() -> None:
    code, output = await start_with("mysql://chat:hunter2@127.0.0.1/chat")
    assert_one_clear_line(code, output, ["'mysql'", "postgresql://"])


async def test_no_server_stops_the_start_in_one_clear_line() -> None:
    port = free_port()
    code, output = await start_with(f"postgresql://chat:hunter2@127.0.0.1:{port}/chat")
    assert_one_clear_line(code, output, ["'chat'", f"127.0.0.1:{port}", "refused"])


async def test_a_wrong_password_stops_the_start_in_one_clear_line(
    postgres_server: Postgres, password_user: str
) -> None:
    url = f"postgresql://{password_user}:hunter2@127.0.0.1:{postgres_server.port}/chat"
    code, output = await start_with(url)
    assert_one_clear_line(
        code,
        output,
        ["'chat'", f"127.0.0.1:{postgres_server.port}", "password authentication failed"],
    )


# ---- chatbot db ------------------------------------------------------------------------


async def chatbot(*args: str, database_url: str) -> str:
    """Run `chatbot ARGS` to completion; its output (it must succeed)."""
    environment = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "warning"}
    code, stdout, stderr = await run_chatbot(*args, env=environment, timeout=120)
    assert code == 0, stderr
    return stdout


async def test_db_upgrade_and_check_report_the_schema_and_sessions(
    postgres_server: Postgres, postgres_url: str
) -> None:
    assert (await chatbot("db", "upgrade", database_url=postgres_url)).strip() == (
        "schema version 3"
    )
    async with run_server(DATABASE_URL=postgres_url, SCRIPTED_TOKENS_PER_SECOND="0") as app:
        for n in range(3):
            await chat(app, f"counted-{n}", "hi")
    report = await chatbot("db", "check", database_url=postgres_url)
    database = postgres_url.rpartition("/")[2]
    assert report.strip() == (
        f"database '{database}' on 127.0.0.1:{postgres_server.port}: schema version 3, 3 sessions"
    )


async def test_db_copy_moves_every_session_from_sqlite_to_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'chatbot.db'}"
    proposal = (
        '/tool send_transaction_to_wallet {"to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",'
        ' "value": "5", "data": "0x", "description": "pay"}'
    )
    before: dict[str, Any] = {}
    async with run_server(DATABASE_URL=sqlite_url, SCRIPTED_TOKENS_PER_SECOND="0") as old:
        for n in range(120):  # more than one page and one commit of the copy
            await chat(old, f"moving-{n:03d}", f"message {n}")
        await chat(old, "moving-000", proposal)
        async with old.client() as http:
            for sid in ("moving-000", "moving-119"):
                before[sid] = (await http.get("/api/state", params={"session_id": sid})).json()

    output = await chatbot(
        "db", "copy", "--from", sqlite_url, "--to", postgres_url, database_url=sqlite_url
    )
    assert "copied 100 sessions" in output  # progress while it runs
    assert output.strip().endswith("done: 120 sessions copied")

    async with run_server(DATABASE_URL=postgres_url) as new, new.client() as http:
        for sid, state in before.items():
            after = (await http.get("/api/state", params={"session_id": sid})).json()
            assert after["messages"] == state["messages"]
            assert after["wallet_tx"] == state["wallet_tx"]
    assert before["moving-000"]["wallet_tx"] is not None
