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
    evm_server_over_http,
    networks_setting,
    run_chain,
    silent_node,
)
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
