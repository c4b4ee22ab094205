"""Clients of the original app work unchanged: its wallet request and its network switch.

The original client reads `pending_wallet_tx` as a JSON string and reports the wallet's
chain only as a system note, "Dectected user's wallet connected to NAME network" (sic).
`original_client/chat-manager.js` is such a client, written from that description; it
runs in chromium, from a page of another origin, as the original front end did.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.browser import needs_chromium, serve_page
from tests.server import RunningServer, run_server
from tests.sse import Event, EventsView, is_idle_state, open_sse

# The network names of the original client's chain map.
NETWORKS = json.dumps(
    {
        name: {"chain_id": chain_id, "rpc_url": "http://127.0.0.1:9/never-called"}
        for name, chain_id in [
            ("testnet", 31337),
            ("mainnet", 1),
            ("polygon", 137),
            ("arbitrum", 42161),
            ("base", 8453),
        ]
    }
)
ACCOUNT_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ONE_ETH = str(10**18)
PROPOSAL = {"to": ACCOUNT_1, "value": ONE_ETH, "data": "0x", "description": "Pay account 1"}
ORIGINAL_TX_FIELDS = {"to", "value", "data", "gas", "description", "timestamp"}
CLIENT_JS = (Path(__file__).parent / "original_client" / "chat-manager.js").read_text()


@pytest.fixture(scope="module")
async def app() -> AsyncIterator[RunningServer]:
    async with run_server(NETWORKS=NETWORKS, SCRIPTED_TOKENS_PER_SECOND="0") as running:
        yield running


async def state_of(http: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    response = await http.get("/api/state", params={"session_id": session_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def note_and_reply(http: httpx.AsyncClient, session_id: str, text: str) -> EventsView:
    """Send a system note and follow the session until the agent has answered it."""
    async with open_sse(http, f"/api/sessions/{session_id}/events") as reader:
        view = EventsView()
        view.apply(await reader.next())
        response = await http.post("/api/system", json={"message": text, "session_id": session_id})
        assert response.status_code == 200, response.text
        for predicate in (is_reply_done, is_idle_state):
            for event in await reader.until(predicate):
                view.apply(event)
    return view


def is_reply_done(event: Event) -> bool:
    """The agent's reply message has been completed."""
    return event.event == "message.completed" and event.json()["message"]["sender"] == "agent"


@pytest.mark.parametrize("spelling", ["Dectected", "Detected"])
async def test_the_wallet_network_note_switches_only_its_own_session(
    app: RunningServer, spelling: str
) -> None:
    mine, theirs = f"orig-net-{spelling}", f"orig-other-{spelling}"
    async with app.client() as http:
        await http.post("/api/system", json={"message": "hello", "session_id": theirs})
        text = f"{spelling} user's wallet connected to polygon network"
        view = await note_and_reply(http, mine, text)

        assert view.flags["network"] == "polygon"  # a `state` event said so
        assert ("system", text) in view.contents()  # shown as sent
        assert view.contents()[-1] == ("agent", f"You said: {text}")  # and given to the agent
        assert (await http.get(f"/api/sessions/{mine}")).json()["network"] == "polygon"
        assert (await state_of(http, theirs))["network"] == "testnet"

        # Stored: a command in another request sees it.
        switched = await http.post(
            "/api/mcp-command", json={"command": "get_network", "session_id": mine}
        )
        data = switched.json()["data"]
        assert (data["network"], data["chain_id"]) == ("polygon", 137)


async def test_an_unknown_wallet_network_leaves_the_network_and_tells_the_agent(
    app: RunningServer,
) -> None:
    sid = "orig-net-unknown"
    async with app.client() as http:
        await note_and_reply(http, sid, "Dectected user's wallet connected to base network")
        view = await note_and_reply(
            http, sid, "Dectected user's wallet connected to linea-sepolia network"
        )
        assert view.flags["network"] == "base"
        note = [content for sender, content in view.contents() if sender == "system"][-1]
        assert note.startswith("Dectected user's wallet connected to linea-sepolia network")
        assert "No network named 'linea-sepolia'" in note
        assert "stays on 'base'" in note
        assert view.contents()[-1] == ("agent", f"You said: {note}")


# ---- the original client in a real browser ---------------------------------------------


@pytest.fixture(scope="module")
async def original_app() -> AsyncIterator[str]:
    """The original front end's page, on an origin of its own as it was."""
    page = f"<!doctype html><title>original client</title><script>{CLIENT_JS}</script>"
    async with serve_page(page) as url:
        yield url


async def open_original_client(browser: Browser, page_url: str, app: RunningServer) -> Page:
    """A tab of the original front end, with one connected `OriginalChatManager`."""
    page = await browser.new_page()
    await page.goto(page_url)
    await page.evaluate(
        "url => { window.chat = new OriginalChatManager(url); window.chat.connectSSE(); }",
        app.url,
    )
    await page.wait_for_function("window.chat.states > 0")
    return page


async def chat_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate(
        "({ id: chat.sessionId, state: chat.state, walletRequests: chat.walletRequests,"
        " errors: chat.errors })"
    )
    return state


@needs_chromium
async def test_the_original_client_signs_rejects_and_switches_networks_in_its_own_tab(
    browser: Browser, app: RunningServer, original_app: str
) -> None:
    tab = await open_original_client(browser, original_app, app)
    other_tab = await open_original_client(browser, original_app, app)
    try:
        assert await other_tab.evaluate("chat.sendMessage('hello from the other tab')") == 200
        await other_tab.wait_for_function(
            "chat.state.messages.length === 2 && !chat.state.isProcessing"
        )
        proposal = f"/tool send_transaction_to_wallet {json.dumps(PROPOSAL)}"
        assert await tab.evaluate("text => chat.sendMessage(text)", proposal) == 200
        await tab.wait_for_function("chat.walletRequests.length === 1")
        seen = await chat_state(tab)
        tx = seen["walletRequests"][0]
        assert set(tx) <= ORIGINAL_TX_FIELDS
        assert {key: tx[key] for key in PROPOSAL} == PROPOSAL
        assert isinstance(tx["timestamp"], str)
        assert tx["timestamp"]
        assert seen["state"]["pendingWalletTx"] == tx

        async with app.client() as http:
            typed = (await state_of(http, seen["id"]))["wallet_tx"]
            assert typed is not None
            assert typed["to"] == ACCOUNT_1

            # The user rejects it in the wallet; the original client says so in a note.
            await tab.evaluate("chat.sendTransactionResult(false, undefined, 'User denied')")
            await tab.wait_for_function(
                "chat.state.messages.some(m => m.sender === 'agent'"
                " && m.content === 'You said: Transaction rejected by user: User denied')"
                " && !chat.state.isProcessing"
            )
            seen = await chat_state(tab)
            assert seen["state"].get("pendingWalletTx") is None
            after = await state_of(http, seen["id"])
            assert (after["pending_wallet_tx"], after["wallet_tx"]) == (None, None)
            late = {"session_id": seen["id"], "tx_id": typed["id"], "status": "sent"}
            answer = await http.post("/api/wallet/result", json={**late, "hash": "0x" + "ab" * 32})
            assert answer.json()["error"]["code"] == "wallet_tx_already_resolved"

            # The wallet moves to Polygon: this session follows, the other tab's does not.
            await tab.evaluate("chat.sendNetworkSwitchRequest('polygon')")
            await tab.wait_for_function(
                "chat.state.network === 'polygon' && !chat.state.isProcessing"
            )
            assert (await state_of(http, seen["id"]))["network"] == "polygon"

            other = await chat_state(other_tab)
            assert other["id"] != seen["id"]
            assert other["state"]["network"] == "testnet"
            assert [m["content"] for m in other["state"]["messages"]] == [
                "hello from the other tab",
                "You said: hello from the other tab",
            ]
            assert other["walletRequests"] == []
            assert (await state_of(http, other["id"]))["network"] == "testnet"
        assert (await chat_state(tab))["errors"] == []
        assert other["errors"] == []
    finally:
        await tab.close()
        await other_tab.close()
