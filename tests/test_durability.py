"""Durable sessions: history on disk as it happens; restarts and evictions lose nothing.

Each promise is checked on both stores: SQLite and Postgres (a private cluster)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatbot.model import Message
from chatbot.store import store_from_url
from tests.server import run_server
from tests.sse import EventsView, SSEReader, is_idle_state, open_sse

RESTARTED = "The server restarted while this reply was being written; it stops here."
LONG = " ".join(f"w{i}" for i in range(300))


def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chatbot.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend: the durability promises hold on both."""
    if request.param == "sqlite":
        return database(tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


def contents(messages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(m["sender"], m["content"], m["status"]) for m in messages]


async def state_of(http: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    response = await http.get("/api/state", params={"session_id": sid})
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def chat_and_wait(http: httpx.AsyncClient, reader: SSEReader, sid: str, text: str) -> None:
    response = await http.post("/api/chat", json={"message": text, "session_id": sid})
    assert response.status_code == 200, response.text
    await reader.until(is_idle_state)


async def test_a_crash_mid_turn_loses_no_completed_message(database_url: str) -> None:
    sid = "crash-victim"
    env = {
        "DATABASE_URL": database_url,
        "SCRIPTED_TOKENS_PER_SECOND": "50",
        "STREAM_SAVE_INTERVAL_SECONDS": "0.05",
    }
    async with run_server(**env) as first, first.client() as http:
        async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
            await reader.next()
            await chat_and_wait(http, reader, sid, "hello")
            response = await http.post("/api/chat", json={"message": LONG, "session_id": sid})
            assert response.status_code == 200
            deltas = 0
            while deltas < 15:  # 0.3 s of streaming: several periodic saves have committed
                event = await reader.next()
                deltas += event.event == "message.delta"
        first.process.kill()  # SIGKILL: no shutdown, no flush
        await first.process.wait()

    async with run_server(**env) as second, second.client() as http:
        state = await state_of(http, sid)
        senders = [m["sender"] for m in state["messages"]]
        assert senders == ["user", "agent", "user", "agent", "system"]
        hello, reply, long_message, partial, note = state["messages"]
        assert (hello["content"], reply["content"]) == ("hello", "You said: hello")
        assert reply["status"] == "complete"
        assert long_message["content"] == LONG
        assert partial["status"] == "interrupted"
        assert partial["is_streaming"] is False
        assert partial["content"], "the part written before the crash was saved"
        assert f"You said: {LONG}".startswith(partial["content"])
        assert note["content"] == RESTARTED
        ids = [m["id"] for m in state["messages"]]
        assert len(ids) == len(set(ids)), "every message exactly once"

        async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
            await reader.next()
            await chat_and_wait(http, reader, sid, "still there?")
        after = await state_of(http, sid)
        assert after["messages"][-1]["content"] == "You said: still there?"
        assert after["messages"][:5] == state["messages"], "the recovery note is written once"


ACCOUNT_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


async def test_an_evicted_session_comes_back_with_history_network_wallet_and_pending_tx(
    database_url: str,
) -> None:
    sid = "comes-back"
    networks = {
        "testnet": {"chain_id": 31337, "rpc_url": "http://127.0.0.1:8545"},
        "sepolia": {"chain_id": 11155111, "rpc_url": "http://127.0.0.1:8546"},
    }
    propose = "/tool send_transaction_to_wallet " + json.dumps(
        {"to": ACCOUNT_1, "value": "5", "data": "0x"}
    )
    async with (
        run_server(
            DATABASE_URL=database_url,
            NETWORKS=json.dumps(networks),
            SCRIPTED_TOKENS_PER_SECOND="0",
            SESSION_TIMEOUT_SECONDS="0.3",
            CLEANUP_INTERVAL_SECONDS="0.2",
        ) as app,
        app.client() as http,
    ):
        switch = {"command": "set_network", "args": {"network": "sepolia"}, "session_id": sid}
        assert (await http.post("/api/mcp-command", json=switch)).status_code == 200
        wallet = {"session_id": sid, "address": ACCOUNT_1, "chain_id": 11155111}
        assert (await http.post("/api/wallet/account", json=wallet)).status_code == 200
        async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
            await reader.next()
            await chat_and_wait(http, reader, sid, propose)
        before = await state_of(http, sid)
        assert before["wallet_tx"]["chain_id"] == 11155111

        seen = len(app.log)
        await app.wait_for_log("sessions expired", after=seen)
        assert "chatbot_sessions_active 0.0" in (await http.get("/metrics")).text

        after = await state_of(http, sid)
        assert after["messages"] == before["messages"]
        assert after["network"] == "sepolia"
        assert (after["wallet_address"], after["wallet_chain_id"]) == (ACCOUNT_1, 11155111)
        assert after["wallet_tx"] == before["wallet_tx"]
        tx_id = after["wallet_tx"]["id"]
        answer = {"session_id": sid, "tx_id": tx_id, "status": "rejected", "error": "no"}
        assert (await http.post("/api/wallet/result", json=answer)).status_code == 200


async def test_500_sessions_of_20_messages_survive_a_restart(database_url: str) -> None:
    env = {
        "DATABASE_URL": database_url,
        "SCRIPTED_TOKENS_PER_SECOND": "0",
        "BUSY_POLICY": "queue",
        "MAX_QUEUED_MESSAGES": "10",
    }
    ids = [f"bulk-{n:03d}" for n in range(500)]
    checked = random.Random(5).sample(ids, 50)
    limits = httpx.Limits(max_connections=60)
    async with run_server(**env) as app, app.client(limits=limits) as http:
        gate = asyncio.Semaphore(50)

        async def fill(sid: str) -> None:
            async with gate, open_sse(http, f"/api/sessions/{sid}/events") as reader:
                view = EventsView()
                view.apply(await reader.next())
                for n in range(10):
                    message = {"message": f"{sid} says {n}", "session_id": sid}
                    assert (await http.post("/api/chat", json=message)).status_code == 200
                while len(view.messages) < 20 or view.flags.get("is_processing"):
                    view.apply(await reader.next())

        await asyncio.gather(*(fill(sid) for sid in ids))
        before = {sid: await state_of(http, sid) for sid in checked}
    assert all(len(state["messages"]) == 20 for state in before.values())

    async with run_server(**env) as app, app.client() as http:
        for sid in checked:
            assert (await state_of(http, sid))["messages"] == before[sid]["messages"]


async def test_a_corrupt_database_is_a_clear_start_up_error(tmp_path: Path) -> None:
    path = tmp_path / "chatbot.db"
    path.write_bytes(random.Random(1).randbytes(8192))
    with pytest.raises(RuntimeError) as failure:
        async with run_server(DATABASE_URL=database(tmp_path)):
            pass
    message = str(failure.value)
    assert "cannot open the database" in message
    assert str(path) in message
    assert path.read_bytes()[:16] != b"SQLite format 3\x00", "the file was left as it was"


async def test_retention_deletes_old_sessions_and_only_them(database_url: str) -> None:
    store = store_from_url(database_url)
    await store.open()
    long_ago = (datetime.now(UTC) - timedelta(days=45)).isoformat().replace("+00:00", "Z")
    for sid, last_active in (("old-one", long_ago), ("recent-one", None)):
        when = last_active or datetime.now(UTC).isoformat().replace("+00:00", "Z")
        store.save_session(sid, network="testnet", title=sid, created_at=when, last_active_at=when)
        store.save_message(sid, 0, Message(sender="user", content=f"hi from {sid}"))
    await store.close()

    async with (
        run_server(DATABASE_URL=database_url, CLEANUP_INTERVAL_SECONDS="0.2") as app,
        app.client() as http,
    ):
        await app.wait_for_log("old sessions deleted")
        assert (await http.get("/api/state", params={"session_id": "old-one"})).status_code == 404
        recent = await state_of(http, "recent-one")
        assert [m["content"] for m in recent["messages"]] == ["hi from recent-one"]


async def test_long_histories_are_paged(database_url: str) -> None:
    sid = "long-history"
    async with (
        run_server(
            DATABASE_URL=database_url, SCRIPTED_TOKENS_PER_SECOND="0", SNAPSHOT_MESSAGES="4"
        ) as app,
        app.client() as http,
    ):
        async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
            snapshot = await reader.next()
            assert snapshot.json()["older_messages"] == 0
            for n in range(5):
                await chat_and_wait(http, reader, sid, f"message {n}")
        state = await state_of(http, sid)
        assert [m["content"] for m in state["messages"]] == [
            "message 3", "You said: message 3", "message 4", "You said: message 4",
        ]  # fmt: skip
        assert state["older_messages"] == 6

        path = f"/api/sessions/{sid}/messages"
        first = await http.get(path, params={"before": state["messages"][0]["id"], "limit": 4})
        page = first.json()
        assert [m["content"] for m in page["messages"]] == [
            "message 1", "You said: message 1", "message 2", "You said: message 2",
        ]  # fmt: skip
        assert page["has_more"] is True
        rest = (await http.get(path, params={"before": page["messages"][0]["id"]})).json()
        assert [m["content"] for m in rest["messages"]] == ["message 0", "You said: message 0"]
        assert rest["has_more"] is False

        unknown = await http.get(path, params={"before": "m_nope"})
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "message_not_found")
        assert (await http.get("/api/sessions/never-there/messages")).status_code == 404
