"""The built-in Ethereum MCP server against a real chain, through real MCP client sessions.

One Hardhat node (chain 31337) serves the module, with a test ERC-20 deployed by dev
account 1; account 0 sends nothing, so its 10000 ETH stay exact. The server runs as
`python -m chatbot.tools.evm` over stdio, and over streamable HTTP in one test.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from mcp import Client

from tests.chain import (
    DEV_ACCOUNTS,
    DEV_BALANCE_WEI,
    Chain,
    erc20_transfer,
    evm_server_over_http,
    networks_setting,
    run_chain,
    silent_node,
)
from tests.mcp_servers import fresh_address, in_own_task, ok, stdio_server, tool_error
from tests.server import free_port

ACCOUNT0, TOKEN_OWNER, SENDER, RECIPIENT = DEV_ACCOUNTS
SUPPLY = 1_000_000 * 10**18
RPC_TIMEOUT = "1.5"
TOOLS = {
    "get_network_info",
    "get_balance",
    "get_block",
    "get_transaction",
    "get_transaction_receipt",
    "call_contract",
    "encode_function_call",
    "get_erc20_balance",
    "get_current_time",
    "get_contract_abi",
    "decode_calldata",
    "get_code",
    "resolve_ens",
    "lookup_address",
    "get_token_info",
    "estimate_transaction",
}


@pytest.fixture(scope="module")
async def chain() -> AsyncIterator[Chain]:
    async with run_chain(31337) as running:
        yield running


@pytest.fixture(scope="module")
async def token(chain: Chain) -> str:
    """The test ERC-20 (TST, 18 decimals), its whole supply held by TOKEN_OWNER."""
    return await chain.deploy_token(sender=TOKEN_OWNER, supply=SUPPLY)


@pytest.fixture(scope="module")
async def evm(chain: Chain) -> AsyncIterator[Client]:
    """One stdio MCP session: `testnet` is the chain, `down` a closed port, `silent` a mute node."""
    async with silent_node() as silent:
        networks = networks_setting(
            testnet=chain,
            down={"chain_id": 1, "rpc_url": f"http://127.0.0.1:{free_port()}"},
            silent={"chain_id": 5, "rpc_url": silent},
        )
        async with in_own_task(stdio_server(networks, "--rpc-timeout", RPC_TIMEOUT)) as client:
            yield client


async def test_the_server_lists_every_tool_with_a_network_argument(evm: Client) -> None:
    listed = {tool.name: tool for tool in (await evm.list_tools()).tools}
    assert set(listed) == TOOLS
    for name in TOOLS - {"get_current_time", "encode_function_call"}:
        assert "network" in listed[name].input_schema["required"], name
    assert "(outputTypes)" in (listed["call_contract"].description or "")


async def test_network_info_reports_the_chain(evm: Client, chain: Chain) -> None:
    info = await ok(evm, "get_network_info", network="testnet")
    assert info["network"] == "testnet"
    assert info["chain_id"] == info["configured_chain_id"] == 31337
    assert info["block_number"] == await chain.block_number()
    assert int(info["gas_price_wei"]) > 0
    assert "hardhat" in info["client_version"].lower()


async def test_dev_account_holds_10000_eth(evm: Client) -> None:
    balance = await ok(evm, "get_balance", network="testnet", address=ACCOUNT0.lower())
    assert balance == {
        "network": "testnet",
        "chain_id": 31337,
        "address": ACCOUNT0,
        "balance_wei": str(DEV_BALANCE_WEI),
        "balance_eth": "10000",
    }


async def test_latest_block_is_the_chains_head(evm: Client, chain: Chain, token: str) -> None:
    head = await chain.block_number()
    latest = await ok(evm, "get_block", network="testnet", number="latest")
    assert latest["number"] == head > 0
    node_block = await chain.rpc("eth_getBlockByNumber", hex(head), False)
    assert latest["hash"] == node_block["hash"]
    assert latest["transactions"] == node_block["transactions"]
    assert latest["transaction_count"] == len(node_block["transactions"])
    assert latest["time"].endswith("Z")
    genesis = await ok(evm, "get_block", network="testnet", number=0)
    assert genesis["number"] == 0
    assert genesis["hash"] == (await chain.rpc("eth_getBlockByNumber", "0x0", False))["hash"]


async def test_a_sent_transaction_and_its_receipt(evm: Client, chain: Chain) -> None:
    recipient = fresh_address()
    tx_hash = await chain.send_transaction(to=recipient, value=15 * 10**17, sender=SENDER)

    tx = await ok(evm, "get_transaction", network="testnet", hash=tx_hash)
    assert tx["hash"] == tx_hash
    assert tx["from"] == SENDER
    assert tx["to"] == recipient
    assert tx["value_wei"] == str(15 * 10**17)
    assert tx["value_eth"] == "1.5"
    assert tx["block_number"] == await chain.block_number()

    receipt = await ok(evm, "get_transaction_receipt", network="testnet", hash=tx_hash)
    assert receipt["transaction_hash"] == tx_hash
    assert receipt["status"] == 1
    assert receipt["succeeded"] is True
    assert receipt["gas_used"] == 21000
    assert receipt["block_number"] == tx["block_number"]

    balance = await ok(evm, "get_balance", network="testnet", address=recipient)
    assert balance["balance_eth"] == "1.5"


async def test_encode_function_call_gives_the_transfer_calldata(evm: Client) -> None:
    amount = 12345
    encoded = await ok(
        evm,
        "encode_function_call",
        network="testnet",
        function_signature="transfer(address,uint256)",
        args=[RECIPIENT, str(amount)],
    )
    assert encoded["selector"] == "0xa9059cbb"
    assert encoded["function"] == "transfer(address,uint256)"
    assert encoded["data"] == "0x" + erc20_transfer(RECIPIENT, amount).hex()


async def test_call_contract_reads_the_deployed_token(evm: Client, token: str) -> None:
    balance = await ok(
        evm,
        "call_contract",
        network="testnet",
        to=token,
        function_signature="balanceOf(address)(uint256)",
        args=[TOKEN_OWNER],
    )
    assert balance["result"] == [str(SUPPLY)]
    assert balance["function"] == "balanceOf(address)"
    assert balance["outputs"] == ["uint256"]
    assert int(balance["raw"], 16) == SUPPLY

    symbol = await ok(
        evm, "call_contract", network="testnet", to=token, function_signature="symbol()(string)"
    )
    assert symbol["result"] == ["TST"]
    decimals = await ok(
        evm,
        "call_contract",
        network="testnet",
        to=token,
        function_signature="function decimals() external view returns (uint8)",
    )
    assert decimals["result"] == ["18"]
    undecoded = await ok(
        evm, "call_contract", network="testnet", to=token, function_signature="totalSupply()"
    )
    assert undecoded["result"] is None
    assert int(undecoded["raw"], 16) == SUPPLY


async def test_a_token_transfer_shows_in_receipt_and_erc20_balance(
    evm: Client, chain: Chain, token: str
) -> None:
    holder = fresh_address()
    encoded = await ok(
        evm,
        "encode_function_call",
        function_signature="transfer(address,uint256)",
        args=[holder, "2500000000000000000"],
    )
    tx_hash = await chain.send_transaction(to=token, data=encoded["data"], sender=TOKEN_OWNER)

    receipt = await ok(evm, "get_transaction_receipt", network="testnet", hash=tx_hash)
    assert receipt["status"] == 1
    assert receipt["to"] == token
    [log] = receipt["logs"]
    assert log["address"] == token
    assert log["topics"][2] == "0x" + holder[2:].lower().rjust(64, "0")

    balance = await ok(evm, "get_erc20_balance", network="testnet", token=token, owner=holder)
    assert balance == {
        "network": "testnet",
        "chain_id": 31337,
        "token": token,
        "owner": holder,
        "balance": "2500000000000000000",
        "decimals": 18,
        "symbol": "TST",
        "formatted": "2.5",
    }


async def test_current_time_is_iso_utc(evm: Client) -> None:
    now = await ok(evm, "get_current_time", network="testnet")
    assert now["utc"].endswith("Z")
    assert abs(now["unix"] - time.time()) < 60
    assert datetime.fromisoformat(now["utc"].replace("Z", "+00:00")).timestamp() == pytest.approx(
        now["unix"], abs=1
    )


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        pytest.param(
            "get_balance",
            {"network": "testnet", "address": "0x1234"},
            ["'0x1234' is not an Ethereum address", "40 hex digits"],
            id="malformed-address",
        ),
        pytest.param(
            "get_balance",
            {"network": "testnet", "address": "0xF39fd6e51aad88F6F4ce6aB8827279cffFb92266"},
            ["invalid EIP-55 checksum"],
            id="bad-checksum",
        ),
        pytest.param(
            "get_balance",
            {"network": "mainnet", "address": ACCOUNT0},
            ["unknown network 'mainnet'", "down, silent, testnet"],
            id="unknown-network",
        ),
        pytest.param(
            "get_transaction",
            {"network": "testnet", "hash": "0xabc"},
            ["is not a transaction hash", "64 hex digits"],
            id="bad-hash",
        ),
        pytest.param(
            "get_transaction_receipt",
            {"network": "testnet", "hash": "0x" + "ab" * 32},
            ["no transaction 0x" + "ab" * 32, "network 'testnet'"],
            id="unknown-transaction",
        ),
        pytest.param(
            "get_balance",
            {"network": "down", "address": ACCOUNT0},
            ["network 'down' (chain 1, http://127.0.0.1:", "is unreachable"],
            id="rpc-down",
        ),
        pytest.param(
            "get_block",
            {"network": "silent"},
            ["network 'silent'", f"did not answer eth_getBlockByNumber within {RPC_TIMEOUT} s"],
            id="rpc-timeout",
        ),
        pytest.param(
            "get_block",
            {"network": "testnet", "number": 10**9},
            ["block 1000000000 does not exist"],
            id="future-block",
        ),
        pytest.param(
            "encode_function_call",
            {"function_signature": "transfer(address,uint7)", "args": [ACCOUNT0, 1]},
            ["'uint7' is not a Solidity ABI type"],
            id="bad-type",
        ),
        pytest.param(
            "encode_function_call",
            {"function_signature": "transfer(address,uint256)", "args": [ACCOUNT0]},
            ["transfer(address,uint256) takes 2 argument(s), got 1"],
            id="missing-argument",
        ),
    ],
)
async def test_bad_input_is_a_clear_tool_error_and_the_server_goes_on(
    evm: Client, tool: str, arguments: dict[str, Any], expected: list[str]
) -> None:
    message = await tool_error(evm, tool, **arguments)
    for part in expected:
        assert part in message, message
    info = await ok(evm, "get_network_info", network="testnet")
    assert info["chain_id"] == 31337


async def test_a_reverted_call_says_why(evm: Client, token: str) -> None:
    message = await tool_error(
        evm,
        "call_contract",
        network="testnet",
        to=token,
        function_signature="transfer(address,uint256)(bool)",
        args=[RECIPIENT, 1],
    )
    assert "reverted" in message
    assert "TestToken: insufficient balance" in message


async def test_a_call_to_an_account_without_code_is_explained(evm: Client) -> None:
    message = await tool_error(
        evm,
        "get_erc20_balance",
        network="testnet",
        token=fresh_address(),
        owner=ACCOUNT0,
    )
    assert "returned no data" in message
    assert "is it a contract on this network" in message


async def test_two_chains_answer_at_once_through_one_server(chain: Chain) -> None:
    recipient = fresh_address()
    async with run_chain(31338) as other:
        await chain.send_transaction(to=recipient, value=2 * 10**18, sender=SENDER)
        await other.send_transaction(to=recipient, value=3 * 10**18, sender=SENDER)
        networks = networks_setting(alpha=chain, beta=other)
        async with stdio_server(networks, "--rpc-timeout", RPC_TIMEOUT) as client:
            alpha_info, beta_info, alpha_balance, beta_balance = await asyncio.gather(
                ok(client, "get_network_info", network="alpha"),
                ok(client, "get_network_info", network="beta"),
                ok(client, "get_balance", network="alpha", address=recipient),
                ok(client, "get_balance", network="beta", address=recipient),
            )
    assert (alpha_info["chain_id"], beta_info["chain_id"]) == (31337, 31338)
    assert (alpha_balance["chain_id"], beta_balance["chain_id"]) == (31337, 31338)
    assert (alpha_balance["balance_eth"], beta_balance["balance_eth"]) == ("2", "3")


async def test_streamable_http_transport_serves_the_same_tools(chain: Chain) -> None:
    networks = json.dumps({"testnet": chain.network()})
    async with evm_server_over_http(networks) as url, Client(url) as client:
        info = await ok(client, "get_network_info", network="testnet")
        assert info["chain_id"] == 31337
        balance = await ok(client, "get_balance", network="testnet", address=ACCOUNT0)
        assert balance["balance_eth"] == "10000"
        message = await tool_error(client, "get_balance", network="testnet", address="nope")
        assert "is not an Ethereum address" in message
        again = await ok(client, "get_block", network="testnet")
        assert again["number"] == await chain.block_number()
