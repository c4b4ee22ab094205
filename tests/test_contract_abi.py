"""Contract ABIs from Sourcify and Etherscan, and calldata decoding, with fake explorers.

The MCP tests drive `python -m chatbot.tools.evm` over stdio, its SOURCIFY_URL and
ETHERSCAN_API_URL pointing at one fake explorer server (tests/fakes/explorers.py) on
127.0.0.1; the chain itself is never asked, so NETWORKS names an unused RPC URL. Each
test uses fresh addresses, because the server process caches answers per address.
Unit tests cover calldata.py and the cache's time and size bounds in-process.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from pydantic import SecretStr

from chatbot.tools.evm import abi, calldata
from chatbot.tools.evm.explorer import (
    ContractNotVerifiedError,
    ContractSources,
    ExplorerRateLimitedError,
    ExplorerUnavailableError,
)
from tests.chain import erc20_transfer
from tests.fakes import FakeExplorers, NotVerified, RateLimited, ServerError, Verified
from tests.mcp_servers import fresh_address, in_own_task, ok, stdio_server, tool_error
from tests.server import free_port

API_KEY = "test-etherscan-key-" + secrets.token_hex(8)
CHAIN_ID = 31337
NETWORKS = json.dumps({"testnet": {"chain_id": CHAIN_ID, "rpc_url": "http://127.0.0.1:9"}})
HOLDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _param(kind: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"internalType": kind, "name": name, "type": kind, **extra}


# A token whose parameter names differ from the standard's, so a test can tell which ABI
# decoded a call; plus what an explorer also returns (constructor, event, error).
TOKEN_ABI: list[dict[str, Any]] = [
    {"inputs": [], "stateMutability": "nonpayable", "type": "constructor"},
    {
        "type": "function",
        "name": "transfer",
        "inputs": [_param("address", "recipient"), _param("uint256", "amount")],
        "outputs": [_param("bool", "")],
        "stateMutability": "nonpayable",
    },
    {
        "type": "function",
        "name": "balanceOf",
        "inputs": [_param("address", "account")],
        "outputs": [_param("uint256", "")],
        "stateMutability": "view",
    },
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            _param("address", "from", indexed=True),
            _param("address", "to", indexed=True),
            _param("uint256", "value", indexed=False),
        ],
    },
    {
        "type": "error",
        "name": "InsufficientBalance",
        "inputs": [_param("address", "account"), _param("uint256", "needed")],
    },
]

ROUTER_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "swap",
        "stateMutability": "payable",
        "inputs": [
            {
                "name": "params",
                "type": "tuple",
                "components": [
                    _param("address", "tokenIn"),
                    _param("address", "tokenOut"),
                    _param("uint256", "amountIn"),
                ],
            },
            _param("bytes", ""),
        ],
        "outputs": [],
    },
    {
        "type": "function",
        "name": "batch",
        "inputs": [
            {
                "name": "calls",
                "type": "tuple[]",
                "components": [_param("address", "target"), _param("bytes", "data")],
            },
            {
                "name": "pairs",
                "type": "tuple[2]",
                "components": [_param("uint8", ""), _param("bool", "")],
            },
        ],
        "outputs": [],
    },
    # Explorers' data is not ours: a malformed entry is skipped, not fatal.
    {"type": "function", "name": "broken", "inputs": [{"name": "x", "type": "uint7"}]},
]


# -- the MCP server ------------------------------------------------------------------------


def evm_server(env: dict[str, str], errlog: Path) -> AbstractAsyncContextManager[Client]:
    """A client of `python -m chatbot.tools.evm` over stdio, its stderr written to `errlog`."""
    return stdio_server(NETWORKS, "--explorer-timeout", "5", env=env, errlog=errlog)


@pytest.fixture(scope="module")
async def explorers() -> AsyncIterator[FakeExplorers]:
    async with FakeExplorers.start(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evm-logs")


@pytest.fixture(scope="module")
async def keyless(explorers: FakeExplorers, logs: Path) -> AsyncIterator[Client]:
    """A server without ETHERSCAN_API_KEY: Sourcify only."""
    async with in_own_task(evm_server(explorers.env(), logs / "keyless.log")) as client:
        yield client


@pytest.fixture(scope="module")
async def keyed(explorers: FakeExplorers, logs: Path) -> AsyncIterator[Client]:
    """A server with the key the fake Etherscan accepts; its stderr goes to keyed.log."""
    async with in_own_task(evm_server(explorers.env(API_KEY), logs / "keyed.log")) as client:
        yield client


@contextmanager
def etherscan_key(explorers: FakeExplorers, accepted: str) -> Iterator[None]:
    """Make the fake Etherscan accept only `accepted` for the block."""
    before, explorers.api_key = explorers.api_key, accepted
    try:
        yield
    finally:
        explorers.api_key = before


async def test_tools_are_listed_read_only(keyless: Client) -> None:
    tools = {tool.name: tool for tool in (await keyless.list_tools()).tools}
    for name in ("get_contract_abi", "decode_calldata"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is True


async def test_abi_from_sourcify_without_a_key(keyless: Client, explorers: FakeExplorers) -> None:
    token = fresh_address()
    explorers.sourcify[token.lower()] = Verified(TOKEN_ABI, match="match")
    result = await ok(keyless, "get_contract_abi", network="testnet", address=token.lower())
    assert result["network"] == "testnet"
    assert result["chain_id"] == CHAIN_ID
    assert result["address"] == token
    assert result["source"] == "sourcify"
    assert result["match"] == "match"
    assert result["functions"] == ["transfer(address,uint256)", "balanceOf(address)"]
    assert result["read_functions"] == ["balanceOf(address)(uint256)"]
    assert result["events"] == ["Transfer(address,address,uint256)"]
    assert result["errors"] == ["InsufficientBalance(address,uint256)"]
    assert [entry["type"] for entry in result["abi"]] == ["function", "function", "event", "error"]
    assert result["abi_entries_left_out"] == 0
    (request,) = [r for r in explorers.requests if r.address and r.address.lower() == token.lower()]
    assert request.service == "sourcify"
    assert request.chain_id == CHAIN_ID
    assert request.query == {"fields": "abi"}


async def test_abi_is_cached(keyless: Client, explorers: FakeExplorers) -> None:
    token = fresh_address()
    explorers.sourcify[token.lower()] = Verified(TOKEN_ABI)
    first = await ok(keyless, "get_contract_abi", network="testnet", address=token)
    second = await ok(keyless, "get_contract_abi", network="testnet", address=token.lower())
    assert first == second
    assert explorers.requests_for("sourcify", token) == 1


async def test_not_verified_is_a_clear_error_and_cached(
    keyless: Client, explorers: FakeExplorers
) -> None:
    contract = fresh_address()
    message = await tool_error(keyless, "get_contract_abi", network="testnet", address=contract)
    assert contract in message
    assert "'testnet'" in message
    assert f"chain {CHAIN_ID}" in message
    assert "not verified on Sourcify" in message
    assert "verify" in message
    await tool_error(keyless, "get_contract_abi", network="testnet", address=contract)
    assert explorers.requests_for("sourcify", contract) == 1


async def test_sourcify_rate_limit_is_reported_and_not_cached(
    keyless: Client, explorers: FakeExplorers
) -> None:
    token = fresh_address()
    explorers.sourcify[token.lower()] = RateLimited()
    message = await tool_error(keyless, "get_contract_abi", network="testnet", address=token)
    assert "Sourcify (127.0.0.1:" in message
    assert "rate-limiting" in message
    assert "try again" in message
    explorers.sourcify[token.lower()] = Verified(TOKEN_ABI)
    result = await ok(keyless, "get_contract_abi", network="testnet", address=token)
    assert result["source"] == "sourcify"
    assert explorers.requests_for("sourcify", token) == 2


async def test_sourcify_outage_is_reported(keyless: Client, explorers: FakeExplorers) -> None:
    token = fresh_address()
    explorers.sourcify[token.lower()] = ServerError(503)
    message = await tool_error(keyless, "get_contract_abi", network="testnet", address=token)
    assert "Sourcify (127.0.0.1:" in message
    assert "unavailable" in message
    assert "HTTP 503" in message


async def test_unknown_network_and_bad_address(keyless: Client) -> None:
    message = await tool_error(keyless, "get_contract_abi", network="moon", address=HOLDER)
    assert "unknown network 'moon'" in message
    assert "testnet" in message
    message = await tool_error(keyless, "get_contract_abi", network="testnet", address="0x1234")
    assert "not an Ethereum address" in message


async def test_abi_from_etherscan_with_a_key(keyed: Client, explorers: FakeExplorers) -> None:
    token = fresh_address()
    explorers.etherscan[token.lower()] = Verified(TOKEN_ABI)
    result = await ok(keyed, "get_contract_abi", network="testnet", address=token)
    assert result["source"] == "etherscan"
    assert result["match"] is None
    assert "transfer(address,uint256)" in result["functions"]
    assert API_KEY not in json.dumps(result)
    (request,) = [r for r in explorers.requests if r.address == token]
    assert request.service == "etherscan"
    assert request.query == {
        "chainid": str(CHAIN_ID),
        "module": "contract",
        "action": "getabi",
        "address": token,
        "apikey": API_KEY,
    }
    await ok(keyed, "get_contract_abi", network="testnet", address=token)
    assert explorers.requests_for("etherscan", token) == 1
    assert explorers.requests_for("sourcify", token) == 0


async def test_sourcify_answers_when_etherscan_has_not_verified(
    keyed: Client, explorers: FakeExplorers
) -> None:
    token = fresh_address()
    explorers.etherscan[token.lower()] = NotVerified()
    explorers.sourcify[token.lower()] = Verified(TOKEN_ABI)
    result = await ok(keyed, "get_contract_abi", network="testnet", address=token)
    assert result["source"] == "sourcify"
    assert explorers.requests_for("etherscan", token) == 1
    assert explorers.requests_for("sourcify", token) == 1


async def test_not_verified_anywhere_names_both_services(keyed: Client) -> None:
    contract = fresh_address()
    message = await tool_error(keyed, "get_contract_abi", network="testnet", address=contract)
    assert "not verified on Etherscan or Sourcify" in message
    assert API_KEY not in message


@pytest.mark.parametrize(
    "reason", ["Max rate limit reached", "Max calls per sec rate limit reached (5/sec)"]
)
async def test_etherscan_rate_limit_is_reported_and_not_cached(
    keyed: Client, explorers: FakeExplorers, reason: str
) -> None:
    token = fresh_address()
    explorers.etherscan[token.lower()] = RateLimited(reason)
    message = await tool_error(keyed, "get_contract_abi", network="testnet", address=token)
    assert "Etherscan (127.0.0.1:" in message
    assert "rate-limiting" in message
    assert API_KEY not in message
    await tool_error(keyed, "get_contract_abi", network="testnet", address=token)
    assert explorers.requests_for("etherscan", token) == 2
    assert explorers.requests_for("sourcify", token) == 0


async def test_invalid_key_is_reported_without_the_key(
    keyed: Client, explorers: FakeExplorers
) -> None:
    token = fresh_address()
    explorers.etherscan[token.lower()] = Verified(TOKEN_ABI)
    with etherscan_key(explorers, "another-key"):
        message = await tool_error(keyed, "get_contract_abi", network="testnet", address=token)
    assert "refused ETHERSCAN_API_KEY" in message
    assert "Invalid API Key" in message
    assert API_KEY not in message


async def test_explorer_down_is_reported(logs: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = {
        "SOURCIFY_URL": f"{closed}/server",
        "ETHERSCAN_API_URL": f"{closed}/v2/api",
        "ETHERSCAN_API_KEY": "",
    }
    async with evm_server(env, logs / "down.log") as client:
        message = await tool_error(
            client, "get_contract_abi", network="testnet", address=fresh_address()
        )
        assert f"Sourcify ({closed.removeprefix('http://')}) is unavailable" in message
        assert "cannot be reached" in message
        assert "try again later" in message


async def test_decode_transfer_with_the_fetched_abi(
    keyless: Client, explorers: FakeExplorers
) -> None:
    token = fresh_address()
    explorers.sourcify[token.lower()] = Verified(TOKEN_ABI)
    data = "0x" + erc20_transfer(HOLDER.lower(), 10**21).hex()
    result = await ok(keyless, "decode_calldata", network="testnet", data=data, to=token)
    assert result == {
        "function": "transfer",
        "signature": "transfer(address,uint256)",
        "selector": "0xa9059cbb",
        "args": [
            {"name": "recipient", "type": "address", "value": HOLDER},
            {"name": "amount", "type": "uint256", "value": str(10**21)},
        ],
        "to": token,
        "abi_source": "sourcify",
        "note": None,
    }
    await ok(keyless, "decode_calldata", network="testnet", data=data, to=token)
    await ok(keyless, "get_contract_abi", network="testnet", address=token)
    assert explorers.requests_for("sourcify", token) == 1


async def test_decode_transfer_with_the_builtin_table(keyless: Client) -> None:
    data = "0x" + erc20_transfer(HOLDER, 5).hex()
    result = await ok(keyless, "decode_calldata", network="testnet", data=data)
    assert result["function"] == "transfer"
    assert result["args"] == [
        {"name": "to", "type": "address", "value": HOLDER},
        {"name": "value", "type": "uint256", "value": "5"},
    ]
    assert result["to"] is None
    assert result["abi_source"] == "builtin"
    assert "built-in table" in result["note"]


async def test_decode_for_an_unverified_contract_uses_the_builtin_table(
    keyless: Client,
) -> None:
    contract = fresh_address()
    data = "0x" + erc20_transfer(HOLDER, 5).hex()
    result = await ok(keyless, "decode_calldata", network="testnet", data=data, to=contract)
    assert result["abi_source"] == "builtin"
    assert f"{contract} is not verified on Sourcify" in result["note"]
    assert [arg["name"] for arg in result["args"]] == ["to", "value"]


async def test_decode_when_sourcify_is_rate_limited_says_so(
    keyless: Client, explorers: FakeExplorers
) -> None:
    token = fresh_address()
    explorers.sourcify[token.lower()] = RateLimited()
    data = "0x" + erc20_transfer(HOLDER, 5).hex()
    result = await ok(keyless, "decode_calldata", network="testnet", data=data, to=token)
    assert result["abi_source"] == "builtin"
    assert "rate-limiting" in result["note"]
    message = await tool_error(
        keyless, "decode_calldata", network="testnet", data="0xdeadbeef", to=token
    )
    assert "0xdeadbeef" in message
    assert "rate-limiting" in message


async def test_decode_unknown_selector(keyless: Client, explorers: FakeExplorers) -> None:
    message = await tool_error(keyless, "decode_calldata", network="testnet", data="0xdeadbeef")
    assert "selector 0xdeadbeef" in message
    assert "give `to`" in message
    token = fresh_address()
    explorers.sourcify[token.lower()] = Verified(TOKEN_ABI)
    message = await tool_error(
        keyless, "decode_calldata", network="testnet", data="0x12345678", to=token
    )
    assert "selector 0x12345678" in message
    assert "proxy" in message


async def test_decode_malformed_data(keyless: Client) -> None:
    message = await tool_error(keyless, "decode_calldata", network="testnet", data="0xzz")
    assert "not 0x-prefixed hex" in message
    message = await tool_error(keyless, "decode_calldata", network="testnet", data="0xa905")
    assert "4-byte function selector" in message
    truncated = "0x" + erc20_transfer(HOLDER, 5).hex()[:38]
    message = await tool_error(keyless, "decode_calldata", network="testnet", data=truncated)
    assert "transfer(address,uint256)" in message
    assert "do not decode" in message


async def test_the_key_never_reaches_the_log(
    keyed: Client, explorers: FakeExplorers, logs: Path
) -> None:
    token = fresh_address()
    explorers.etherscan[token.lower()] = Verified(TOKEN_ABI)
    await ok(keyed, "get_contract_abi", network="testnet", address=token)
    assert explorers.requests_for("etherscan", token) == 1
    # The server logs every HTTP request with its URL; wrapped lines must not hide the key.
    log = re.sub(r"\s+", "", (logs / "keyed.log").read_text())
    assert "HTTPRequest:GET" in log
    assert API_KEY not in log


# -- ContractSources in-process: the cache's bounds, the key in errors and logs -------------


class Clock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def sources(
    explorers: FakeExplorers, clock: Clock, *, key: str | None = None, **options: Any
) -> AsyncIterator[ContractSources]:
    async with httpx2.AsyncClient(timeout=5) as client:
        yield ContractSources(
            client,
            sourcify_url=explorers.sourcify_url,
            etherscan_api_url=explorers.etherscan_api_url,
            etherscan_api_key=None if key is None else SecretStr(key),
            clock=clock,
            **options,
        )


async def test_cache_keeps_verified_an_hour_and_not_verified_five_minutes(
    explorers: FakeExplorers,
) -> None:
    clock = Clock()
    token, unverified = fresh_address(), fresh_address()
    explorers.sourcify[token.lower()] = Verified(TOKEN_ABI)
    async with sources(explorers, clock) as lookups:
        found = await lookups.abi(CHAIN_ID, token, "testnet")
        assert found.abi == TOKEN_ABI
        with pytest.raises(ContractNotVerifiedError):
            await lookups.abi(CHAIN_ID, unverified, "testnet")
        clock.now += 299
        await lookups.abi(CHAIN_ID, token, "testnet")
        with pytest.raises(ContractNotVerifiedError):
            await lookups.abi(CHAIN_ID, unverified, "testnet")
        assert explorers.requests_for("sourcify", unverified) == 1
        clock.now += 2
        with pytest.raises(ContractNotVerifiedError):
            await lookups.abi(CHAIN_ID, unverified, "testnet")
        assert explorers.requests_for("sourcify", unverified) == 2
        clock.now += 3300
        await lookups.abi(CHAIN_ID, token, "testnet")
        assert explorers.requests_for("sourcify", token) == 2
        # The same address on another chain is another contract.
        await lookups.abi(1, token, "mainnet")
        assert explorers.requests_for("sourcify", token) == 3
        assert explorers.requests[-1].chain_id == 1


async def test_cache_forgets_the_least_recently_used(explorers: FakeExplorers) -> None:
    first, second, third = fresh_address(), fresh_address(), fresh_address()
    for token in (first, second, third):
        explorers.sourcify[token.lower()] = Verified(TOKEN_ABI)
    async with sources(explorers, Clock(), cache_size=2) as lookups:
        for token in (first, second, first, third, first, second):
            await lookups.abi(CHAIN_ID, token, "testnet")
    assert explorers.requests_for("sourcify", first) == 1
    assert explorers.requests_for("sourcify", second) == 2
    assert explorers.requests_for("sourcify", third) == 1


async def test_errors_are_distinct_and_hold_no_key(explorers: FakeExplorers) -> None:
    token = fresh_address()
    explorers.etherscan[token.lower()] = RateLimited()
    async with sources(explorers, Clock(), key=API_KEY) as lookups:
        with pytest.raises(ExplorerRateLimitedError) as limited:
            await lookups.abi(CHAIN_ID, token, "testnet")
    assert API_KEY not in str(limited.value)
    closed = f"http://127.0.0.1:{free_port()}/v2/api"
    async with httpx2.AsyncClient(timeout=5) as client:
        lookups = ContractSources(
            client,
            sourcify_url=explorers.sourcify_url,
            etherscan_api_url=closed,
            etherscan_api_key=SecretStr(API_KEY),
        )
        with pytest.raises(ExplorerUnavailableError) as down:
            await lookups.abi(CHAIN_ID, token, "testnet")
    assert "Etherscan (127.0.0.1:" in str(down.value)
    assert API_KEY not in str(down.value)
    assert down.value.__cause__ is None
    assert down.value.__suppress_context__


async def test_request_logs_are_scrubbed_of_the_key(
    explorers: FakeExplorers, caplog: pytest.LogCaptureFixture
) -> None:
    token = fresh_address()
    explorers.etherscan[token.lower()] = Verified(TOKEN_ABI)
    caplog.set_level(logging.INFO, logger="httpx2")
    async with sources(explorers, Clock(), key=API_KEY) as lookups:
        await lookups.abi(CHAIN_ID, token, "testnet")
    assert "apikey=***" in caplog.text
    assert API_KEY not in caplog.text


# -- calldata.py ---------------------------------------------------------------------------


def test_decode_call_names_arguments_and_formats_values() -> None:
    data = erc20_transfer(HOLDER.lower(), 2**255)
    call = calldata.decode_call(data, TOKEN_ABI)
    assert call.name == "transfer"
    assert call.signature == "transfer(address,uint256)"
    assert call.selector == "0xa9059cbb"
    assert call.arguments == (
        calldata.Argument("recipient", "address", HOLDER),
        calldata.Argument("amount", "uint256", str(2**255)),
    )


def test_decode_call_reads_structs_and_arrays_of_structs() -> None:
    swap = abi.parse_signature("swap((address,address,uint256),bytes)")
    data = abi.encode_call(swap, [[HOLDER, HOLDER, 7], "0x0102"])
    call = calldata.decode_call(data, ROUTER_ABI)
    assert call.signature == "swap((address,address,uint256),bytes)"
    assert call.arguments == (
        calldata.Argument(
            "params",
            "(address,address,uint256)",
            {"tokenIn": HOLDER, "tokenOut": HOLDER, "amountIn": "7"},
        ),
        calldata.Argument("arg1", "bytes", "0x0102"),
    )
    batch = abi.parse_signature("batch((address,bytes)[],(uint8,bool)[2])")
    data = abi.encode_call(batch, [[[HOLDER, "0x"]], [[1, True], [2, False]]])
    call = calldata.decode_call(data, ROUTER_ABI)
    assert call.arguments[0].value == [{"target": HOLDER, "data": "0x"}]
    # Unnamed struct fields cannot become an object: the struct stays a list.
    assert call.arguments[1].value == [["1", True], ["2", False]]


def test_common_functions_decode_without_an_abi() -> None:
    set_approval = abi.parse_signature("setApprovalForAll(address,bool)")
    call = calldata.decode_call(
        abi.encode_call(set_approval, [HOLDER, True]), calldata.COMMON_FUNCTIONS
    )
    assert call.arguments == (
        calldata.Argument("operator", "address", HOLDER),
        calldata.Argument("approved", "bool", True),
    )
    safe = abi.parse_signature("safeTransferFrom(address,address,uint256,bytes)")
    call = calldata.decode_call(
        abi.encode_call(safe, [HOLDER, HOLDER, 1, "0xff"]), calldata.COMMON_FUNCTIONS
    )
    assert call.selector == "0xb88d4fde"
    assert [argument.name for argument in call.arguments] == ["from", "to", "tokenId", "data"]


def test_unknown_selector_and_bad_calldata() -> None:
    with pytest.raises(calldata.UnknownSelectorError) as unknown:
        calldata.decode_call(bytes.fromhex("deadbeef"), TOKEN_ABI)
    assert unknown.value.selector == "0xdeadbeef"
    with pytest.raises(ValueError, match="4-byte function selector; got 2"):
        calldata.decode_call(b"\xa9\x05", TOKEN_ABI)
    with pytest.raises(ValueError, match=r"transfer\(address,uint256\).*do not decode"):
        calldata.decode_call(bytes.fromhex("a9059cbb") + b"\0" * 40, TOKEN_ABI)


def test_entry_signature_spells_out_tuples() -> None:
    signature = abi.entry_signature(ROUTER_ABI[1])
    assert signature.canonical == "batch((address,bytes)[],(uint8,bool)[2])"
    assert signature.outputs == ()
    with pytest.raises(ValueError, match="uint7"):
        abi.entry_signature(ROUTER_ABI[2])
    with pytest.raises(ValueError, match="no name"):
        abi.entry_signature({"type": "fallback"})
