"""Tools through the app: the MCP pool, the built-in EVM server, per-session networks, the wallet.

Two real Hardhat chains (chain ids 31337 and 31338); the app spawns the EVM MCP server
from the repository's mcp.json; the scripted model makes the tool calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chain import (
    DEV_ACCOUNTS,
    Chain,
    erc20_transfer,
    evm_server_over_http,
    networks_setting,
    run_chain,
    silent_node,
)
from tests.fakes import FakeLLM
from tests.server import RunningServer, run_server
from tests.sse import EventsView, is_idle_state, open_sse

REPO_MCP_CONFIG = str(Path(__file__).parent.parent / "mcp.json")
WATCHED = DEV_ACCOUNTS[3]  # nobody sends from it here: its balance stays 10000 ETH


@pytest.fixture(scope="module")
async def chains() -> AsyncIterator[tuple[Chain, Chain]]:
    async with run_chain(31337) as first, run_chain(31338) as second:
        yield first, second


@pytest.fixture(scope="module")
async def app(chains: tuple[Chain, Chain]) -> AsyncIterator[RunningServer]:
    first, second = chains
    async with (
        silent_node() as silent,
        run_server(
            NETWORKS=networks_setting(
                testnet=first, othernet=second, silent={"chain_id": 5, "rpc_url": silent}
            ),
            MCP_CONFIG=REPO_MCP_CONFIG,
            SCRIPTED_TOKENS_PER_SECOND="0",
        ) as running,
    ):
        await running.wait_for_log("mcp pool ready")
        yield running


def tool_call(name: str, **args: Any) -> str:
    return f"/tool {name} {json.dumps(args)}"


async def turn(http: httpx.AsyncClient, sid: str, message: str) -> EventsView:
    """Send a message and follow the session's stream until the agent is done."""
    async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
        view = EventsView()
        view.apply(await reader.next())
        response = await http.post("/api/chat", json={"message": message, "session_id": sid})
        assert response.status_code == 200, response.text
        for event in await reader.until(is_idle_state, timeout=30):
            view.apply(event)
    return view


def last_tool(view: EventsView) -> dict[str, Any]:
    tool: dict[str, Any] = [m for m in view.messages.values() if m["tool"]][-1]["tool"]
    return tool


async def test_a_balance_question_shows_the_real_balance(app: RunningServer) -> None:
    async with app.client() as http:
        view = await turn(http, "tools-balance", tool_call("get_balance", address=WATCHED))
    tool = last_tool(view)
    assert tool["status"] == "success"
    assert tool["args"] == {"address": WATCHED}, "the model never passes the network"
    assert tool["result"]["balance_eth"] == "10000"
    assert (tool["result"]["network"], tool["result"]["chain_id"]) == ("testnet", 31337)
    reply = list(view.messages.values())[-1]
    assert reply["sender"] == "agent"
    assert '"balance_eth":"10000"' in reply["content"]


async def test_two_sessions_on_two_networks_each_read_their_own_chain(
    app: RunningServer,
) -> None:
    async with app.client() as http:
        switched = await http.post(
            "/api/mcp-command",
            json={"command": "set_network", "args": {"network": "othernet"}, "session_id": "t-b"},
        )
        assert switched.json()["success"] is True
        on_first, on_second = await asyncio.gather(
            turn(http, "t-a", tool_call("get_network_info")),
            turn(http, "t-b", tool_call("get_network_info")),
        )
    assert last_tool(on_first)["result"]["chain_id"] == 31337
    assert last_tool(on_second)["result"]["chain_id"] == 31338
    assert last_tool(on_second)["result"]["network"] == "othernet"


async def test_the_whole_wallet_flow_on_the_dev_chain(
    app: RunningServer, chains: tuple[Chain, Chain]
) -> None:
    chain = chains[0]
    recipient = DEV_ACCOUNTS[1]
    before = await chain.balance(recipient)
    propose = tool_call(
        "send_transaction_to_wallet",
        to=recipient,
        value=str(10**18),
        data="0x",
        description="Send 1 ETH to account 1",
    )
    async with app.client() as http:
        view = await turn(http, "tools-wallet", propose)
        tx = view.flags["wallet_tx"]
        assert (tx["to"], tx["value"], tx["chain_id"]) == (recipient, str(10**18), 31337)

        # The user's wallet signs and sends it on the chain the request names.
        tx_hash = await chain.send_transaction(to=tx["to"], value=int(tx["value"]), data=tx["data"])
        async with open_sse(http, "/api/sessions/tools-wallet/events") as reader:
            view.apply(await reader.next())
            answer = {"session_id": "tools-wallet", "tx_id": tx["id"], "status": "sent"}
            response = await http.post("/api/wallet/result", json={**answer, "hash": tx_hash})
            assert response.status_code == 200
            for event in await reader.until(is_idle_state, timeout=30):
                view.apply(event)
        assert ("system", f"Transaction sent: {tx_hash}") in view.contents()
        assert view.flags["wallet_tx"] is None

        again = await http.post("/api/wallet/result", json={**answer, "hash": tx_hash})
        assert again.status_code == 409

        receipt = await turn(
            http, "tools-wallet", tool_call("get_transaction_receipt", hash=tx_hash)
        )
    result = last_tool(receipt)["result"]
    assert (result["status"], result["succeeded"], result["to"]) == (1, True, recipient)
    assert await chain.balance(recipient) == before + 10**18


def evm_server_pids(parent: int) -> list[int]:
    """The app's EVM MCP server processes (children of the app)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"chatbot.tools.evm" in cmdline:
            pids.append(int(entry.name))
    return pids


async def test_a_killed_tool_server_is_a_clear_error_then_comes_back(app: RunningServer) -> None:
    (pid,) = evm_server_pids(app.process.pid)
    seen = len(app.log)
    os.kill(pid, signal.SIGKILL)
    ask = tool_call("get_balance", address=WATCHED)
    async with app.client() as http:
        failed = await turn(http, "tools-outage", ask)
        tool = last_tool(failed)
        assert tool["status"] == "error"
        assert "evm" in tool["error"]
        assert "reconnecting" in tool["error"]

        await app.wait_for_log("mcp server connected", after=seen, timeout=30)
        recovered = await turn(http, "tools-outage", ask)
    assert last_tool(recovered)["status"] == "success"
    assert last_tool(recovered)["result"]["balance_eth"] == "10000"
    assert evm_server_pids(app.process.pid) != [pid]


async def test_interrupt_cancels_a_tool_call_in_flight(app: RunningServer) -> None:
    """On a network whose node never answers, Stop ends the turn at once, tool and all."""
    sid = "tools-stuck"
    async with app.client() as http:
        switch = {"command": "set_network", "args": {"network": "silent"}, "session_id": sid}
        assert (await http.post("/api/mcp-command", json=switch)).json()["success"] is True
        async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
            view = EventsView()
            view.apply(await reader.next())
            message = {"message": tool_call("get_block"), "session_id": sid}
            assert (await http.post("/api/chat", json=message)).status_code == 200
            for event in await reader.until(lambda e: e.event == "tool.call"):
                view.apply(event)
            started = asyncio.get_running_loop().time()
            stopped = await http.post("/api/interrupt", json={"session_id": sid})
            elapsed = asyncio.get_running_loop().time() - started
            for event in await reader.until(is_idle_state):
                view.apply(event)
    assert stopped.json()["is_processing"] is False
    assert elapsed < 1.0, "the node never answers: only cancelling the call ends the turn"
    tool = last_tool(view)
    assert (tool["name"], tool["status"]) == ("get_block", "interrupted")
    assert view.contents()[-1] == ("system", "Interrupted by user.")


@pytest.fixture(scope="module")
async def two_servers(
    chains: tuple[Chain, Chain], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    """The EVM server twice, over streamable HTTP and stdio: every tool name collides."""
    networks = networks_setting(testnet=chains[0])
    async with evm_server_over_http(networks) as url:
        config = tmp_path_factory.mktemp("mcp") / "mcp.json"
        config.write_text(
            json.dumps(
                {
                    "mcpServers": {
                        "remote": {"url": url},
                        "local": {"command": "python", "args": ["-m", "chatbot.tools.evm"]},
                    }
                }
            )
        )
        async with run_server(
            NETWORKS=networks, MCP_CONFIG=str(config), SCRIPTED_TOKENS_PER_SECOND="0"
        ) as running:
            await running.wait_for_log("mcp pool ready")
            yield running


async def test_servers_over_http_and_stdio_with_colliding_names_get_prefixes(
    two_servers: RunningServer,
) -> None:
    async with two_servers.client() as http:
        for prefix in ("remote", "local"):
            view = await turn(
                http, f"tools-{prefix}", tool_call(f"{prefix}_get_balance", address=WATCHED)
            )
            tool = last_tool(view)
            assert (tool["name"], tool["status"]) == (f"{prefix}_get_balance", "success")
            assert tool["result"]["balance_eth"] == "10000"
        view = await turn(http, "tools-bare", tool_call("get_balance", address=WATCHED))
    assert last_tool(view)["status"] == "error", "a colliding name exists only prefixed"


async def report_wallet(
    http: httpx.AsyncClient, sid: str, address: str | None, chain_id: int | None = 31337
) -> dict[str, Any]:
    """The client tells the server which wallet account this session's user has."""
    body = {"session_id": sid, "address": address, "chain_id": chain_id}
    response = await http.post("/api/wallet/account", json=body)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def test_my_balance_is_the_reported_wallets(app: RunningServer) -> None:
    sid = "tools-mine"
    async with app.client() as http:
        state = await report_wallet(http, sid, WATCHED.lower())
        assert (state["wallet_address"], state["wallet_chain_id"]) == (WATCHED, 31337)
        view = await turn(http, sid, tool_call("get_balance"))
        tool = last_tool(view)
        assert tool["args"] == {}, "the model left the address out"
        assert (tool["result"]["address"], tool["result"]["balance_eth"]) == (WATCHED, "10000")

        state = await report_wallet(http, sid, None, None)
        assert (state["wallet_address"], state["wallet_chain_id"]) == (None, None)
        view = await turn(http, sid, tool_call("get_balance"))
    tool = last_tool(view)
    assert tool["status"] == "error"
    assert "not connected a wallet" in tool["error"]


async def test_a_malformed_wallet_report_changes_nothing(app: RunningServer) -> None:
    sid = "tools-malformed"
    async with app.client() as http:
        await report_wallet(http, sid, WATCHED)
        body = {"session_id": sid, "address": WATCHED[:-2], "chain_id": 1}
        refused = await http.post("/api/wallet/account", json=body)
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "invalid_request"
        state = (await http.get("/api/state", params={"session_id": sid})).json()
    assert (state["wallet_address"], state["wallet_chain_id"]) == (WATCHED, 31337)


async def test_proposals_are_simulated_from_the_users_address(
    app: RunningServer, chains: tuple[Chain, Chain]
) -> None:
    holder = DEV_ACCOUNTS[2]
    token = await chains[0].deploy_token(supply=5 * 10**18, sender=holder)
    sid = "tools-simulated"
    async with app.client() as http:
        await report_wallet(http, sid, holder)
        too_much = tool_call(
            "send_transaction_to_wallet",
            to=token,
            value="0",
            data="0x" + erc20_transfer(WATCHED, 6 * 10**18).hex(),
            description="Send 6 TST",
        )
        view = await turn(http, sid, too_much)
        simulation = view.flags["wallet_tx"]["simulation"]
        assert view.flags["wallet_tx"]["token_call"] == {
            "function": "transfer",
            "token": token,
            "symbol": "TST",
            "decimals": 18,
            "amount": str(6 * 10**18),
            "amount_formatted": "6",
            "counterparty": WATCHED,
        }
        assert simulation["ok"] is False
        assert simulation["revert_reason"] == "TestToken: insufficient balance"
        assert (simulation["gas"], simulation["fee_wei"]) == (None, None)
        told = last_tool(view)["result"]["simulation"]
        assert "REVERT" in told["note"]
        assert "insufficient balance" in told["note"]

        rejected = {"session_id": sid, "tx_id": view.flags["wallet_tx"]["id"], "status": "rejected"}
        async with open_sse(http, f"/api/sessions/{sid}/events") as reader:
            await reader.next()
            assert (await http.post("/api/wallet/result", json=rejected)).status_code == 200
            await reader.until(is_idle_state)  # the agent has answered the rejection

        enough = tool_call(
            "send_transaction_to_wallet",
            to=token,
            value="0",
            data="0x" + erc20_transfer(WATCHED, 10**18).hex(),
            description="Send 1 TST",
        )
        view = await turn(http, sid, enough)
    simulation = view.flags["wallet_tx"]["simulation"]
    assert simulation["ok"] is True
    assert simulation["revert_reason"] is None
    assert 21_000 < simulation["gas"] < 100_000
    assert int(simulation["fee_wei"]) > 0
    assert int(simulation["fee_wei"]) % simulation["gas"] == 0, "gas times the price of gas"


async def test_without_a_wallet_a_proposal_is_shown_unsimulated(
    app: RunningServer, chains: tuple[Chain, Chain]
) -> None:
    token = await chains[0].deploy_token(symbol="APR")
    unlimited = "0x095ea7b3" + WATCHED[2:].lower().rjust(64, "0") + "f" * 64
    propose = tool_call(
        "send_transaction_to_wallet", to=token, value="0", data=unlimited, description="Approve"
    )
    async with app.client() as http:
        view = await turn(http, "tools-unsimulated", propose)
    tx = view.flags["wallet_tx"]
    assert tx["simulation"] is None
    note = last_tool(view)["result"]["simulation"]["note"]
    assert "wallet address is unknown" in note
    call = tx["token_call"]
    assert (call["function"], call["symbol"], call["counterparty"]) == ("approve", "APR", WATCHED)
    assert call["amount_formatted"] == "unlimited"


async def test_a_chat_sent_at_start_up_gets_the_chain_tools(chains: tuple[Chain, Chain]) -> None:
    """The tool servers connect in the background: the first turn waits for them."""
    async with (
        FakeLLM.start("anthropic") as fake,
        run_server(
            NETWORKS=networks_setting(testnet=chains[0]),
            MCP_CONFIG=REPO_MCP_CONFIG,
            **fake.env(),
        ) as running,
        running.client() as http,
    ):
        assert (await http.get("/health")).text == "OK"
        chat = {"message": "what can you do?", "session_id": "tools-race"}
        assert (await http.post("/api/chat", json=chat)).status_code == 200
        (request,) = await fake.wait_requests(1, timeout=30)
    assert {"get_balance", "get_code", "send_transaction_to_wallet"} <= set(request.tool_names)
