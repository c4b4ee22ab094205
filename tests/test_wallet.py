"""The wallet flow: the agent proposes a transaction, the user's wallet answers it once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.server import RunningServer, run_server
from tests.sse import EventsView, SSEReader, is_idle_state, open_sse

ACCOUNT_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TX_HASH = "0x" + "ab" * 32
ONE_ETH = "1000000000000000000"


def propose(to: str = ACCOUNT_1, value: str = ONE_ETH, data: str = "0x") -> str:
    """A scripted message that makes the agent call the wallet tool."""
    args = {"to": to, "value": value, "data": data, "description": "Send 1 ETH to account 1"}
    return f"/tool send_transaction_to_wallet {json.dumps(args)}"


@pytest.fixture(scope="module")
async def fast() -> AsyncIterator[RunningServer]:
    """Scripted replies at once; wallet requests expire quickly; the sweep runs often."""
    async with run_server(
        SCRIPTED_TOKENS_PER_SECOND="0",
        WALLET_TX_TIMEOUT_SECONDS="1.5",
        CLEANUP_INTERVAL_SECONDS="0.2",
    ) as running:
        yield running


async def follow_until(reader: SSEReader, view: EventsView, event_type: str) -> dict[str, Any]:
    """Apply events until one of `event_type` arrives; returns its data."""
    while True:
        event = await reader.next()
        view.apply(event)
        if event.event == event_type:
            data: dict[str, Any] = event.json()
            return data


async def settle(reader: SSEReader, view: EventsView) -> None:
    """Apply events until the running turn is over."""
    for event in await reader.until(is_idle_state):
        view.apply(event)


async def start_proposal(
    http: httpx.AsyncClient, sid: str, reader: SSEReader, view: EventsView
) -> dict[str, Any]:
    view.apply(await reader.next())
    response = await http.post("/api/chat", json={"message": propose(), "session_id": sid})
    assert response.status_code == 200, response.text
    request = await follow_until(reader, view, "wallet.request")
    await settle(reader, view)
    tx: dict[str, Any] = request["tx"]
    return tx


async def test_a_proposed_transaction_is_pending_in_every_tab(fast: RunningServer) -> None:
    sid = "wallet-tabs"
    async with fast.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as tab:
        view = EventsView()
        tx = await start_proposal(http, sid, tab, view)

        assert set(tx) == {
            "id", "to", "value", "data", "chain_id", "network",
            "description", "created_at", "expires_at", "simulation", "token_call",
        }  # fmt: skip
        assert tx["simulation"] is None, "no wallet address is known: nothing to simulate from"
        assert tx["token_call"] is None, "a plain transfer of ETH"
        assert (tx["to"], tx["value"], tx["data"]) == (ACCOUNT_1, ONE_ETH, "0x")
        assert (tx["chain_id"], tx["network"]) == (31337, "testnet")
        assert tx["expires_at"] > tx["created_at"]

        tool = next(m for m in view.messages.values() if m["tool"])
        assert tool["tool"]["name"] == "send_transaction_to_wallet"
        assert tool["tool"]["status"] == "success"
        assert tool["tool"]["result"]["tx_id"] == tx["id"]

        async with open_sse(http, f"/api/sessions/{sid}/events") as second_tab:
            snapshot = (await second_tab.next()).json()
        assert snapshot["wallet_tx"] == tx
        state = (await http.get("/api/state", params={"session_id": sid})).json()
        assert state["wallet_tx"] == tx
        # The original app's field: a JSON string of the fields its clients read.
        original = {
            "to": ACCOUNT_1,
            "value": ONE_ETH,
            "data": "0x",
            "description": "Send 1 ETH to account 1",
            "timestamp": tx["created_at"],
        }
        for shown in (snapshot, state, view.flags):
            assert isinstance(shown["pending_wallet_tx"], str)
            assert json.loads(shown["pending_wallet_tx"]) == original


async def test_sent_resolves_once_and_the_agent_continues(fast: RunningServer) -> None:
    sid = "wallet-sent"
    async with fast.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as reader:
        view = EventsView()
        tx = await start_proposal(http, sid, reader, view)

        answer = {"session_id": sid, "tx_id": tx["id"], "status": "sent", "hash": TX_HASH}
        response = await http.post("/api/wallet/result", json=answer)
        assert response.status_code == 200, response.text
        assert response.json()["wallet_tx"] is None
        assert response.json()["pending_wallet_tx"] is None

        resolved = await follow_until(reader, view, "wallet.resolved")
        assert resolved == {"tx_id": tx["id"], "status": "sent", "hash": TX_HASH, "error": None}
        await settle(reader, view)
        contents = view.contents()
        assert ("system", f"Transaction sent: {TX_HASH}") in contents
        assert contents[-1] == ("agent", f"You said: Transaction sent: {TX_HASH}")

        again = await http.post("/api/wallet/result", json=answer)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "wallet_tx_already_resolved"
        assert view.flags["wallet_tx"] is None


async def test_rejected_becomes_a_note_for_the_agent(fast: RunningServer) -> None:
    sid = "wallet-rejected"
    async with fast.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as reader:
        view = EventsView()
        tx = await start_proposal(http, sid, reader, view)
        answer = {
            "session_id": sid,
            "tx_id": tx["id"],
            "status": "rejected",
            "error": "User rejected the request.",
        }
        assert (await http.post("/api/wallet/result", json=answer)).status_code == 200
        resolved = await follow_until(reader, view, "wallet.resolved")
        assert resolved["status"] == "rejected"
        await settle(reader, view)
        assert ("system", "Transaction rejected by user: User rejected the request.") in (
            view.contents()
        )


async def test_the_original_free_text_report_resolves_the_pending_transaction(
    fast: RunningServer,
) -> None:
    sid = "wallet-free-text"
    async with fast.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as reader:
        view = EventsView()
        tx = await start_proposal(http, sid, reader, view)
        note = f"Transaction sent: {TX_HASH}"
        response = await http.post("/api/system", json={"message": note, "session_id": sid})
        assert response.status_code == 200
        assert response.json()["wallet_tx"] is None
        resolved = await follow_until(reader, view, "wallet.resolved")
        assert (resolved["tx_id"], resolved["status"], resolved["hash"]) == (
            tx["id"],
            "sent",
            TX_HASH,
        )
        await settle(reader, view)
        assert [c for c in view.contents() if c[0] == "system"] == [("system", note)]

        late = {"session_id": sid, "tx_id": tx["id"], "status": "sent", "hash": TX_HASH}
        assert (await http.post("/api/wallet/result", json=late)).status_code == 409


async def test_an_unanswered_transaction_expires(fast: RunningServer) -> None:
    sid = "wallet-expiry"
    async with fast.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as reader:
        view = EventsView()
        tx = await start_proposal(http, sid, reader, view)
        resolved = await follow_until(reader, view, "wallet.resolved")  # the sweep's doing
        assert resolved == {"tx_id": tx["id"], "status": "expired", "hash": None, "error": None}
        await settle(reader, view)
        assert view.flags["wallet_tx"] is None
        assert any("expired" in text for sender, text in view.contents() if sender == "system")

        late = {"session_id": sid, "tx_id": tx["id"], "status": "sent", "hash": TX_HASH}
        response = await http.post("/api/wallet/result", json=late)
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "wallet_tx_expired"


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        ({"tx_id": "tx_unknown", "status": "sent", "hash": TX_HASH}, 404, "wallet_tx_not_found"),
        ({"tx_id": "tx_x", "status": "sent"}, 404, "wallet_tx_not_found"),
        ({"tx_id": "tx_x", "status": "maybe"}, 422, "invalid_request"),
        ({"status": "sent", "hash": TX_HASH}, 422, "invalid_request"),
    ],
)
async def test_bad_wallet_answers_change_nothing(
    client: httpx.AsyncClient, sid: str, answer: dict[str, str], status: int, code: str
) -> None:
    assert (await client.post("/api/chat", json={"message": "hi", "session_id": sid})).is_success
    before = (await client.get("/api/state", params={"session_id": sid})).json()
    response = await client.post("/api/wallet/result", json={"session_id": sid, **answer})
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    after = (await client.get("/api/state", params={"session_id": sid})).json()
    assert after["seq"] >= before["seq"]
    assert after["wallet_tx"] is None
    assert [m for m in after["messages"] if m["sender"] == "system"] == []


async def test_a_wallet_answer_for_an_unknown_session_is_404_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    answer = {"session_id": "never-made", "tx_id": "tx_1", "status": "rejected"}
    response = await client.post("/api/wallet/result", json=answer)
    assert response.status_code == 404
    assert (await client.get("/api/state", params={"session_id": "never-made"})).status_code == 404


@pytest.mark.parametrize(
    ("to", "value", "data", "complaint"),
    [
        (ACCOUNT_1.lower(), ONE_ETH, "0x", "checksummed"),
        ("0x1234", ONE_ETH, "0x", "checksummed"),
        (ACCOUNT_1, "1.5", "0x", "wei"),
        (ACCOUNT_1, ONE_ETH, "0xabc", "hex"),
    ],
)
async def test_the_wallet_tool_refuses_bad_transactions(
    fast: RunningServer, to: str, value: str, data: str, complaint: str
) -> None:
    sid = f"wallet-bad-{complaint}-{len(to)}-{len(data)}"
    async with fast.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as reader:
        view = EventsView()
        view.apply(await reader.next())
        message = propose(to=to, value=value, data=data)
        assert (
            await http.post("/api/chat", json={"message": message, "session_id": sid})
        ).is_success
        await settle(reader, view)
    tool = next(m for m in view.messages.values() if m["tool"])["tool"]
    assert tool["status"] == "error"
    assert complaint in tool["error"]
    assert view.flags["wallet_tx"] is None


async def test_one_pending_transaction_at_a_time(fast: RunningServer) -> None:
    sid = "wallet-one-at-a-time"
    async with fast.client() as http, open_sse(http, f"/api/sessions/{sid}/events") as reader:
        view = EventsView()
        first = await start_proposal(http, sid, reader, view)
        assert (
            await http.post("/api/chat", json={"message": propose(), "session_id": sid})
        ).is_success
        await settle(reader, view)
    second_call = [m for m in view.messages.values() if m["tool"]][-1]["tool"]
    assert second_call["status"] == "error"
    assert "still waiting" in second_call["error"]
    assert view.flags["wallet_tx"]["id"] == first["id"]
