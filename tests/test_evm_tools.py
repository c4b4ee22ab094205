"""The EVM server's contract, token, ENS and estimate tools, and the simulation behind them.

One Hardhat node serves the module with its own contracts: a 6-decimal TestToken, proxies
of each kind get_code recognises, and a test ENS where alice.eth points at ALICE and back.
The tools are driven through a real stdio MCP session (helpers from tests/mcp_servers.py); the
simulation core is also called directly, with the server's JSON-RPC client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from mcp import Client

from chatbot.tools.evm import ens
from chatbot.tools.evm.rpc import Endpoint, RpcClient, RpcUnavailableError
from chatbot.tools.evm.simulate import Simulation, fee_per_gas, simulate
from tests.chain import (
    DEV_ACCOUNTS,
    Chain,
    deploy_ens,
    erc20_transfer,
    networks_setting,
    run_chain,
)
from tests.mcp_servers import fresh_address, in_own_task, ok, stdio_server, tool_error
from tests.server import free_port

DEPLOYER, TOKEN_OWNER, ALICE, BOB = DEV_ACCOUNTS
SUPPLY = 1_234_567_890  # 1234.56789 in units of a 6-decimal token
USER_ADDRESS_ARGUMENTS = [
    ("get_balance", "address"),
    ("get_erc20_balance", "owner"),
    ("estimate_transaction", "sender"),
    ("lookup_address", "address"),
]
NO_WALLET = (
    "no address given, and the user has not connected a wallet in this session: "
    "ask the user for an address"
)


@dataclass(frozen=True)
class Deployed:
    """The module's contracts."""

    token: str
    reverts: str
    proxy: str
    beacon: str
    beacon_proxy: str
    clone: str
    ens_registry: str


def clone_creation_code(implementation: str) -> bytes:
    """EIP-1167: code that deploys the 45-byte minimal proxy delegating to `implementation`."""
    runtime = (
        bytes.fromhex("363d3d373d3d3d363d73")
        + bytes.fromhex(implementation[2:])
        + bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
    )
    return bytes.fromhex("3d602d80600a3d3981f3") + runtime


@pytest.fixture(scope="module")
async def chain() -> AsyncIterator[Chain]:
    async with run_chain(31337) as running:
        yield running


@pytest.fixture(scope="module")
async def deployed(chain: Chain) -> Deployed:
    token = await chain.deploy_token("Six Decimals", "SIX", 6, SUPPLY, sender=TOKEN_OWNER)
    reverts = await chain.deploy("TestReverts")
    beacon = await chain.deploy("TestBeacon", ["address"], [reverts])
    test_ens = await deploy_ens(chain)
    await test_ens.register("alice.eth", ALICE)
    await test_ens.set_primary_name(ALICE, "alice.eth")
    await test_ens.set_primary_name(BOB, "alice.eth")  # a claim alice.eth does not confirm
    return Deployed(
        token=token,
        reverts=reverts,
        proxy=await chain.deploy("TestEip1967Proxy", ["address"], [reverts]),
        beacon=beacon,
        beacon_proxy=await chain.deploy("TestBeaconProxy", ["address"], [beacon]),
        clone=await chain.deploy_code(clone_creation_code(reverts)),
        ens_registry=test_ens.registry,
    )


@pytest.fixture(scope="module")
async def evm(chain: Chain, deployed: Deployed) -> AsyncIterator[Client]:
    """`testnet` is the chain with the test ENS as its registry; `noens` the same without."""
    networks = networks_setting(
        testnet={**chain.network(), "ens_registry": deployed.ens_registry},
        noens=chain,
    )
    async with in_own_task(stdio_server(networks)) as client:
        yield client


@pytest.fixture
async def rpc() -> AsyncIterator[RpcClient]:
    async with RpcClient() as client:
        yield client


def endpoint_of(chain: Chain) -> Endpoint:
    return Endpoint(name="testnet", chain_id=chain.chain_id, rpc_url=chain.rpc_url)


async def transfer_gas(chain: Chain, to: str, value: int) -> int:
    """The node's own estimate for a plain transfer from BOB.

    21000 on geth; Hardhat's EDR says 21001 (NomicFoundation/hardhat#5458), and the tools
    pass on what the node says rather than second-guess it.
    """
    estimate = await chain.rpc("eth_estimateGas", {"from": BOB, "to": to, "value": hex(value)})
    gas = int(estimate, 16)
    assert gas in (21000, 21001)
    return gas


async def fees_now(chain: Chain) -> tuple[int, int]:
    """The latest block's base fee and the node's suggested tip, asked directly."""
    block = await chain.rpc("eth_getBlockByNumber", "latest", False)
    return int(block["baseFeePerGas"], 16), int(await chain.rpc("eth_maxPriorityFeePerGas"), 16)


async def test_user_address_arguments_are_marked_and_optional(evm: Client) -> None:
    listed = {tool.name: tool for tool in (await evm.list_tools()).tools}
    for tool, argument in USER_ADDRESS_ARGUMENTS:
        schema = listed[tool].input_schema
        assert schema["properties"][argument]["x-user-address"] is True, tool
        assert argument not in schema.get("required", []), tool
        description = schema["properties"][argument]["description"]
        assert description.endswith("Leave out for the user's own wallet address."), tool
        assert listed[tool].annotations is not None
        assert listed[tool].annotations.read_only_hint is True
    assert "x-user-address" not in str(listed["get_code"].input_schema)


@pytest.mark.parametrize(("tool", "argument"), USER_ADDRESS_ARGUMENTS)
async def test_an_omitted_user_address_without_a_wallet_is_a_clear_error(
    evm: Client, deployed: Deployed, tool: str, argument: str
) -> None:
    others = {"get_erc20_balance": {"token": deployed.token}, "estimate_transaction": {"to": BOB}}
    message = await tool_error(evm, tool, network="testnet", **others.get(tool, {}))
    assert message.endswith(NO_WALLET), message


async def test_get_code_of_a_contract_and_of_an_account(evm: Client, deployed: Deployed) -> None:
    contract = await ok(evm, "get_code", network="testnet", address=deployed.token)
    assert contract["address"] == deployed.token
    assert contract["is_contract"] is True
    assert contract["code_size"] > 0
    assert contract["proxy"] is None
    for account in (fresh_address(), DEPLOYER):
        eoa = await ok(evm, "get_code", network="testnet", address=account)
        assert (eoa["is_contract"], eoa["code_size"], eoa["proxy"]) == (False, 0, None)


async def test_get_code_finds_each_kind_of_proxy(evm: Client, deployed: Deployed) -> None:
    proxy = await ok(evm, "get_code", network="testnet", address=deployed.proxy)
    assert proxy["is_contract"] is True
    assert proxy["proxy"] == {"kind": "eip1967", "implementation": deployed.reverts}

    beacon_proxy = await ok(evm, "get_code", network="testnet", address=deployed.beacon_proxy)
    assert beacon_proxy["proxy"] == {
        "kind": "eip1967-beacon",
        "implementation": deployed.reverts,
        "beacon": deployed.beacon,
    }

    clone = await ok(evm, "get_code", network="testnet", address=deployed.clone)
    assert clone["code_size"] == 45
    assert clone["proxy"] == {"kind": "eip1167", "implementation": deployed.reverts}


async def test_every_proxy_really_delegates(evm: Client, deployed: Deployed) -> None:
    for proxy in (deployed.proxy, deployed.beacon_proxy, deployed.clone):
        quotient = await ok(
            evm,
            "call_contract",
            network="testnet",
            to=proxy,
            function_signature="divide(uint256,uint256)(uint256)",
            args=[84, 2],
        )
        assert quotient["result"] == ["42"], proxy


async def test_token_info_in_token_units(evm: Client, deployed: Deployed) -> None:
    info = await ok(evm, "get_token_info", network="testnet", token=deployed.token.lower())
    assert info == {
        "network": "testnet",
        "chain_id": 31337,
        "token": deployed.token,
        "name": "Six Decimals",
        "symbol": "SIX",
        "decimals": 6,
        "total_supply": str(SUPPLY),
        "total_supply_formatted": "1234.56789",
    }
    balance = await ok(
        evm, "get_erc20_balance", network="testnet", token=deployed.token, owner=TOKEN_OWNER
    )
    assert balance["formatted"] == "1234.56789"


async def test_token_info_of_what_is_no_token_says_so(evm: Client, deployed: Deployed) -> None:
    for address in (fresh_address(), deployed.reverts):
        message = await tool_error(evm, "get_token_info", network="testnet", token=address)
        assert f"{address} is not an ERC-20 token" in message
        assert "network 'testnet'" in message


async def test_estimate_a_plain_transfer(evm: Client, chain: Chain) -> None:
    recipient = fresh_address()
    estimate = await ok(
        evm, "estimate_transaction", network="testnet", to=recipient, value=str(10**18), sender=BOB
    )
    base_fee, tip = await fees_now(chain)
    gas = await transfer_gas(chain, recipient, 10**18)
    fee = gas * (base_fee + tip)
    assert estimate["ok"] is True
    assert estimate["revert_reason"] is None
    assert estimate["sender"] == BOB
    assert estimate["value_wei"] == str(10**18)
    assert estimate["gas"] == gas
    assert (estimate["base_fee_wei"], estimate["priority_fee_wei"]) == (str(base_fee), str(tip))
    assert estimate["max_fee_per_gas_wei"] == str(2 * base_fee + tip)
    assert estimate["fee_wei"] == str(fee)
    assert estimate["currency"] == "ETH"
    assert Decimal(estimate["fee"]) * 10**18 == fee


async def test_estimate_a_token_transfer_above_the_balance(evm: Client, deployed: Deployed) -> None:
    estimate = await ok(
        evm,
        "estimate_transaction",
        network="testnet",
        to=deployed.token,
        data="0x" + erc20_transfer(ALICE, 1).hex(),
        sender=BOB,
    )
    assert estimate["ok"] is False
    assert "TestToken: insufficient balance" in estimate["revert_reason"]
    assert (estimate["gas"], estimate["fee_wei"], estimate["fee"]) == (None, None, None)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"value": "1.5"}, "is not an amount of wei"),
        ({"data": "0xabc"}, "is not 0x-prefixed hex"),
        ({"to": "0x1234"}, "is not an Ethereum address"),
    ],
)
async def test_estimate_refuses_bad_input(
    evm: Client, arguments: dict[str, str], expected: str
) -> None:
    message = await tool_error(
        evm,
        "estimate_transaction",
        **{"network": "testnet", "to": BOB, "sender": ALICE, **arguments},
    )
    assert expected in message


async def test_ens_name_and_primary_name_round_trip(evm: Client, deployed: Deployed) -> None:
    resolved = await ok(evm, "resolve_ens", network="testnet", name=" Alice.ETH ")
    assert resolved["name"] == "alice.eth"
    assert resolved["address"] == ALICE
    assert resolved["network"] == "testnet"
    primary = await ok(evm, "lookup_address", network="testnet", address=ALICE.lower())
    assert primary == {
        "network": "testnet",
        "chain_id": 31337,
        "address": ALICE,
        "name": "alice.eth",
    }


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        pytest.param(
            "resolve_ens",
            {"name": "nobody.eth"},
            ["the ENS name 'nobody.eth' was not found on network 'testnet'"],
            id="unknown-name",
        ),
        pytest.param(
            "resolve_ens", {"name": "alice..eth"}, ["has an empty label"], id="empty-label"
        ),
        pytest.param(
            "lookup_address",
            {"address": DEPLOYER},
            [f"{DEPLOYER} has no primary ENS name on network 'testnet'"],
            id="no-reverse-record",
        ),
        pytest.param(
            "lookup_address",
            {"address": BOB},
            ["names 'alice.eth'", f"resolves to {ALICE}, not back to {BOB}"],
            id="unconfirmed-claim",
        ),
        pytest.param(
            "resolve_ens",
            {"network": "noens", "name": "alice.eth"},
            ["ENS is not available on network 'noens'", "it exists on mainnet and Sepolia"],
            id="resolve-without-ens",
        ),
        pytest.param(
            "lookup_address",
            {"network": "noens", "address": ALICE},
            ["ENS is not available on network 'noens'", "it exists on mainnet and Sepolia"],
            id="lookup-without-ens",
        ),
    ],
)
async def test_ens_failures_are_clear(
    evm: Client, tool: str, arguments: dict[str, str], expected: list[str]
) -> None:
    message = await tool_error(evm, tool, **{"network": "testnet", **arguments})
    for part in expected:
        assert part in message, message


def test_namehash_follows_ensip_1() -> None:
    assert ens.namehash("eth").hex() == (
        "93cdeb708b7545dc668eb9280176169d1c33cfd8ed6f04690a0bcc88a93fc4ae"
    )
    assert (
        ens.namehash("foo.eth")
        == ens.namehash(" Foo.ETH")
        == bytes.fromhex("de9b09fd7c5f901e23a3f19fecc54828e9c848539801e86591bd9801b019f84f")
    )
    with pytest.raises(ValueError, match="an ENS name is needed"):
        ens.namehash("  ")


async def test_simulate_a_transfer_prices_it(chain: Chain, rpc: RpcClient) -> None:
    endpoint, recipient = endpoint_of(chain), fresh_address()
    outcome = await simulate(rpc, endpoint, sender=BOB, to=recipient, value=10**18, data=b"")
    base_fee, tip = await fees_now(chain)
    gas = await transfer_gas(chain, recipient, 10**18)
    assert outcome == Simulation(ok=True, gas=gas, fee_wei=gas * (base_fee + tip))
    assert await fee_per_gas(rpc, endpoint) == (base_fee, tip)
    assert outcome.public() == {
        "ok": True,
        "gas": gas,
        "fee_wei": str(gas * (base_fee + tip)),
        "revert_reason": None,
    }


@pytest.mark.parametrize(
    ("contract", "data", "reason"),
    [
        pytest.param(
            "token", erc20_transfer(ALICE, 1), "TestToken: insufficient balance", id="error"
        ),
        pytest.param(
            "reverts",
            keccak(text="divide(uint256,uint256)")[:4] + encode(["uint256", "uint256"], [1, 0]),
            "panic 0x12 (division by zero)",
            id="panic",
        ),
        pytest.param(
            "reverts",
            keccak(text="refuse(uint256)")[:4] + encode(["uint256"], [7]),
            "custom error 0x" + keccak(text="Refused(uint256)")[:4].hex(),
            id="custom-error",
        ),
    ],
)
async def test_simulate_a_revert_says_why(
    chain: Chain, deployed: Deployed, rpc: RpcClient, contract: str, data: bytes, reason: str
) -> None:
    to = getattr(deployed, contract)
    outcome = await simulate(rpc, endpoint_of(chain), sender=BOB, to=to, value=0, data=data)
    assert outcome.ok is False
    assert (outcome.gas, outcome.fee_wei) == (None, None)
    assert outcome.revert_reason is not None
    assert outcome.revert_reason.startswith(reason), outcome.revert_reason


async def test_simulate_without_a_node_raises_unavailable(rpc: RpcClient) -> None:
    endpoint = Endpoint(name="down", chain_id=1, rpc_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RpcUnavailableError, match="is unreachable"):
        await simulate(rpc, endpoint, sender=None, to=BOB, value=0, data=b"")


async def test_simulate_a_transfer_beyond_the_senders_funds_fails(
    chain: Chain, rpc: RpcClient
) -> None:
    """Hardhat calls and estimates it anyway; a wallet would refuse it: the simulation says so."""
    balance = await chain.balance(BOB)
    outcome = await simulate(
        rpc, endpoint_of(chain), sender=BOB, to=ALICE, value=balance + 1, data=b""
    )
    assert outcome.ok is False
    assert outcome.revert_reason is not None
    assert outcome.revert_reason.startswith("insufficient funds: the sender holds")
