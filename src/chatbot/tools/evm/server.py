"""The MCP server: the read-only Ethereum tools, each told its network on every call.

There is no "current network" here. Every chain tool takes `network` (a name from the
NETWORKS setting) and the chat app fills it in from the session, so one server process
serves any number of sessions on different networks at once.

Anticipated failures (bad input, unknown network, node down or slow, reverted call) are
raised as `ToolError`: the caller gets an `is_error` result whose text says what went
wrong and what to fix, and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from chatbot.config import Network
from chatbot.model import iso_utc
from chatbot.tools.evm import abi, ens, results
from chatbot.tools.evm.rpc import (
    Endpoint,
    RpcClient,
    RpcError,
    RpcUnavailableError,
    endpoints,
)
from chatbot.tools.evm.simulate import fee_per_gas, simulate
from chatbot.tools.evm.values import (
    WEI_PER_ETH_DECIMALS,
    checksum_address,
    format_units,
    hex_bytes,
    quantity,
    revert_data,
    transaction_hash,
    wei_amount,
)

P = ParamSpec("P")
R = TypeVar("R")

NetworkName = Annotated[
    str, Field(description="Name of the network to query; the chat app fills this in.")
]
Address = Annotated[str, Field(description="0x-prefixed 20-byte address (EIP-55 or lowercase).")]
UserAddress = Annotated[
    str | None,
    Field(
        description="0x-prefixed 20-byte address (EIP-55 or lowercase). Leave out for the "
        "user's own wallet address.",
        # The chat app fills a marked argument in from the session's wallet when it is left out.
        json_schema_extra={"x-user-address": True},
    ),
]
TxHash = Annotated[str, Field(description="0x-prefixed 32-byte transaction hash.")]
Signature = Annotated[
    str,
    Field(
        description="Function signature as name(inputTypes)(outputTypes), e.g. "
        '"balanceOf(address)(uint256)"; the (outputTypes) part may be left out.'
    ),
]
Args = Annotated[
    list[Any],
    Field(
        default_factory=list,
        description="One JSON value per input type: addresses and bytes as 0x-hex strings, "
        "integers as numbers or decimal strings, tuples and arrays as lists.",
    ),
]
BlockTag = Literal["latest", "earliest", "pending", "safe", "finalized"]

INSTRUCTIONS = (
    "Read-only Ethereum tools. Every chain tool takes `network`, which the chat app sets to "
    "the session's network. Amounts come as exact integer decimal strings (wei, or a token's "
    "smallest unit) and also formatted in token units (ETH, or the token's decimals "
    "applied): quote the formatted ones to the user. Addresses come back in EIP-55 form. "
    "resolve_ens turns an ENS name (e.g. vitalik.eth) into an address and lookup_address "
    "gives an address's primary name; ENS exists on mainnet and Sepolia. Arguments that "
    "mean the user's own address (get_balance address, get_erc20_balance owner, "
    "estimate_transaction sender, lookup_address address) may be left out: the user's "
    "connected wallet is used."
)
IMPLEMENTATION_SLOT = "0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc"
"""EIP-1967: keccak256("eip1967.proxy.implementation") - 1."""
BEACON_SLOT = "0xa3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6cb3582b35133d50"
"""EIP-1967: keccak256("eip1967.proxy.beacon") - 1."""
CLONE_PREFIX = bytes.fromhex("363d3d373d3d3d363d73")
CLONE_SUFFIX = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
"""EIP-1167: a minimal proxy's whole runtime code is PREFIX + implementation + SUFFIX."""
NO_WALLET = (
    "no address given, and the user has not connected a wallet in this session: "
    "ask the user for an address"
)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=True)


def tool_errors(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Report anticipated failures as tool errors with their own message, not as crashes.

    The SDK hides the text of any exception other than `ToolError` (it may be internal),
    and bad input or a dead node is exactly what the model needs to read about.
    """

    @functools.wraps(function)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await function(*args, **kwargs)
        except (ValueError, RpcUnavailableError) as error:
            raise ToolError(str(error)) from error

    return guarded


class EvmTools:
    """The tools, bound to the configured networks and one shared JSON-RPC client."""

    def __init__(self, networks: Mapping[str, Network], rpc: RpcClient) -> None:
        self.networks = dict(networks)
        self.endpoints = endpoints(networks)
        self.rpc = rpc

    def endpoint(self, network: str) -> Endpoint:
        """The named network, or an error listing the names this server knows."""
        found = self.endpoints.get(network)
        if found is None:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise ToolError(f"unknown network {network!r}; this server knows: {known}")
        return found

    async def ask(self, endpoint: Endpoint, method: str, *params: Any) -> Any:
        """One JSON-RPC call; a JSON-RPC error becomes a tool error naming the network."""
        try:
            return await self.rpc.call(endpoint, method, *params)
        except RpcError as error:
            raise ToolError(f"{endpoint.label} refused {method}: {error.message}") from error

    async def eth_call(self, endpoint: Endpoint, to: str, data: bytes) -> bytes:
        """The return data of a read-only call at the latest block; a revert says why."""
        try:
            raw = await self.rpc.call(endpoint, "eth_call", {"to": to, "data": "0x" + data.hex()})
        except RpcError as error:
            revert = revert_data(error.data)
            if revert is None and "revert" not in error.message.lower():
                raise ToolError(f"{endpoint.label} refused eth_call: {error.message}") from error
            reason = abi.revert_reason(revert) if revert is not None else error.message
            raise ToolError(f"the call to {to} reverted on {endpoint.label}: {reason}") from error
        return hex_bytes(str(raw), "eth_call result")

    async def get_network_info(self, network: NetworkName) -> results.NetworkInfo:
        """Chain id, latest block number, gas price and node version of the network."""
        endpoint = self.endpoint(network)
        chain_id, block_number, gas_price = await asyncio.gather(
            self.ask(endpoint, "eth_chainId"),
            self.ask(endpoint, "eth_blockNumber"),
            self.ask(endpoint, "eth_gasPrice"),
        )
        try:
            client_version = str(await self.rpc.call(endpoint, "web3_clientVersion"))
        except RpcError:
            client_version = None
        return results.NetworkInfo(
            network=endpoint.name,
            chain_id=quantity(chain_id),
            configured_chain_id=endpoint.chain_id,
            block_number=quantity(block_number),
            gas_price_wei=str(quantity(gas_price)),
            client_version=client_version,
        )

    async def get_balance(
        self, network: NetworkName, address: UserAddress = None
    ) -> results.Balance:
        """The native (ETH) balance of an address at the latest block, in wei and in ETH."""
        endpoint = self.endpoint(network)
        account = user_address(address)
        wei = quantity(await self.ask(endpoint, "eth_getBalance", account, "latest"))
        return results.Balance(
            network=endpoint.name,
            chain_id=endpoint.chain_id,
            address=account,
            balance_wei=str(wei),
            balance_eth=format_units(wei, WEI_PER_ETH_DECIMALS),
        )

    async def get_block(
        self,
        network: NetworkName,
        number: Annotated[
            Annotated[int, Field(ge=0)] | BlockTag,
            Field(
                description='A block number, or "latest" (also earliest/pending/safe/finalized).'
            ),
        ] = "latest",
    ) -> results.Block:
        """A block's number, hash, time, gas and (the first 100) transaction hashes."""
        endpoint = self.endpoint(network)
        tag = number if isinstance(number, str) else hex(number)
        raw = await self.ask(endpoint, "eth_getBlockByNumber", tag, False)
        if raw is None:
            raise ToolError(f"block {number} does not exist (yet) on {endpoint.label}")
        return results.block(endpoint, raw)

    async def get_transaction(self, network: NetworkName, hash: TxHash) -> results.Transaction:
        """A transaction: sender, recipient, value, gas, input data, and its block once mined."""
        endpoint = self.endpoint(network)
        raw = await self.ask(endpoint, "eth_getTransactionByHash", transaction_hash(hash))
        if raw is None:
            raise ToolError(f"no transaction {hash} on {endpoint.label}")
        return results.transaction(endpoint, raw)

    async def get_transaction_receipt(self, network: NetworkName, hash: TxHash) -> results.Receipt:
        """The receipt of a mined transaction: status (1 success, 0 reverted), gas used, logs."""
        endpoint = self.endpoint(network)
        tx_hash = transaction_hash(hash)
        raw = await self.ask(endpoint, "eth_getTransactionReceipt", tx_hash)
        if raw is None:
            if await self.ask(endpoint, "eth_getTransactionByHash", tx_hash) is not None:
                raise ToolError(
                    f"transaction {hash} is still pending on {endpoint.label}; "
                    "it has no receipt until it is mined, so ask again later"
                )
            raise ToolError(f"no transaction {hash} on {endpoint.label}")
        return results.receipt(endpoint, raw)

    async def call_contract(
        self,
        network: NetworkName,
        to: Annotated[str, Field(description="The contract's address.")],
        function_signature: Signature,
        args: Args,
    ) -> results.ContractCall:
        """Call a contract function read-only (eth_call at the latest block); nothing is sent.

        Give the signature as name(inputTypes)(outputTypes), for example
        "balanceOf(address)(uint256)"; with the output types the result is decoded, one
        JSON value per output (integers as decimal strings), else only `raw` is returned.
        """
        endpoint = self.endpoint(network)
        contract = checksum_address(to, "contract address")
        signature = abi.parse_signature(function_signature)
        data = await self.eth_call(endpoint, contract, abi.encode_call(signature, args))
        decoded = None
        if signature.outputs is not None:
            decoded = self.decode(endpoint, contract, signature, data)
        return results.ContractCall(
            network=endpoint.name,
            chain_id=endpoint.chain_id,
            to=contract,
            function=signature.canonical,
            outputs=None if signature.outputs is None else list(signature.outputs),
            result=decoded,
            raw="0x" + data.hex(),
        )

    async def encode_function_call(
        self,
        function_signature: Signature,
        args: Args,
        network: Annotated[str | None, Field(description="Not used: encoding is offline.")] = None,
    ) -> results.EncodedCall:
        """ABI-encode a function call into 0x calldata (e.g. the `data` of a transaction)."""
        signature = abi.parse_signature(function_signature)
        data = abi.encode_call(signature, args)
        return results.EncodedCall(
            function=signature.canonical,
            selector="0x" + signature.selector.hex(),
            data="0x" + data.hex(),
        )

    async def get_erc20_balance(
        self,
        network: NetworkName,
        token: Annotated[str, Field(description="The ERC-20 token contract's address.")],
        owner: UserAddress = None,
    ) -> results.TokenBalance:
        """An ERC-20 balance: the raw amount, the token's decimals and symbol, and the amount
        formatted with those decimals."""
        endpoint = self.endpoint(network)
        contract = checksum_address(token, "token address")
        account = user_address(owner, "owner address")
        balance_of = abi.parse_signature("balanceOf(address)(uint256)")
        decimals_of = abi.parse_signature("decimals()(uint8)")
        raw_balance, raw_decimals, symbol = await asyncio.gather(
            self.eth_call(endpoint, contract, abi.encode_call(balance_of, [account])),
            self.eth_call(endpoint, contract, abi.encode_call(decimals_of, [])),
            self.token_text(endpoint, contract, "symbol"),
        )
        balance = int(self.decode(endpoint, contract, balance_of, raw_balance)[0])
        decimals = int(self.decode(endpoint, contract, decimals_of, raw_decimals)[0])
        return results.TokenBalance(
            network=endpoint.name,
            chain_id=endpoint.chain_id,
            token=contract,
            owner=account,
            balance=str(balance),
            decimals=decimals,
            symbol=symbol,
            formatted=format_units(balance, decimals),
        )

    async def get_token_info(
        self,
        network: NetworkName,
        token: Annotated[str, Field(description="The ERC-20 token contract's address.")],
    ) -> results.TokenInfo:
        """An ERC-20 token's name, symbol, decimals and total supply (raw, and in token units)."""
        endpoint = self.endpoint(network)
        contract = checksum_address(token, "token address")
        decimals_of = abi.parse_signature("decimals()(uint8)")
        supply_of = abi.parse_signature("totalSupply()(uint256)")
        # name and symbol are optional in ERC-20; decimals and totalSupply make a token.
        try:
            raw_decimals, raw_supply, name, symbol = await asyncio.gather(
                self.eth_call(endpoint, contract, abi.encode_call(decimals_of, [])),
                self.eth_call(endpoint, contract, abi.encode_call(supply_of, [])),
                self.token_text(endpoint, contract, "name"),
                self.token_text(endpoint, contract, "symbol"),
            )
            decimals = int(self.decode(endpoint, contract, decimals_of, raw_decimals)[0])
            supply = int(self.decode(endpoint, contract, supply_of, raw_supply)[0])
        except ToolError as error:
            raise ToolError(f"{contract} is not an ERC-20 token: {error}") from error
        return results.TokenInfo(
            network=endpoint.name,
            chain_id=endpoint.chain_id,
            token=contract,
            name=name,
            symbol=symbol,
            decimals=decimals,
            total_supply=str(supply),
            total_supply_formatted=format_units(supply, decimals),
        )

    async def get_code(self, network: NetworkName, address: Address) -> results.Code:
        """Whether an address is a contract or an account (EOA), its code size, and for a
        proxy (EIP-1967, EIP-1967 beacon, EIP-1167 clone) the implementation it runs."""
        endpoint = self.endpoint(network)
        account = checksum_address(address)
        raw = await self.ask(endpoint, "eth_getCode", account, "latest")
        code = hex_bytes(str(raw), "eth_getCode result")
        return results.Code(
            network=endpoint.name,
            chain_id=endpoint.chain_id,
            address=account,
            is_contract=bool(code),
            code_size=len(code),
            proxy=await self.proxy(endpoint, account, code) if code else None,
        )

    async def resolve_ens(
        self,
        network: NetworkName,
        name: Annotated[str, Field(description="An ENS name, e.g. vitalik.eth.")],
    ) -> results.EnsResolution:
        """The address an ENS name points to (its resolver's address record)."""
        endpoint = self.endpoint(network)
        found = await ens.resolve(
            self.caller(endpoint), self.ens_registry(endpoint), name, endpoint.label
        )
        return results.EnsResolution(
            network=endpoint.name,
            chain_id=endpoint.chain_id,
            name=found.name,
            address=found.address,
            resolver=found.resolver,
        )

    async def lookup_address(
        self, network: NetworkName, address: UserAddress = None
    ) -> results.EnsPrimaryName:
        """The primary ENS name of an address (its reverse record), only if the name resolves
        back to the address; otherwise an error says what was found."""
        endpoint = self.endpoint(network)
        account = user_address(address)
        name = await ens.primary_name(
            self.caller(endpoint), self.ens_registry(endpoint), account, endpoint.label
        )
        return results.EnsPrimaryName(
            network=endpoint.name, chain_id=endpoint.chain_id, address=account, name=name
        )

    async def estimate_transaction(
        self,
        network: NetworkName,
        to: Annotated[str, Field(description="The recipient's or the contract's address.")],
        value: Annotated[
            str,
            Field(description="Native currency to send, in wei, as a decimal string."),
        ] = "0",
        data: Annotated[
            str, Field(description='Calldata as 0x-prefixed hex; "0x" for a plain transfer.')
        ] = "0x",
        sender: UserAddress = None,
    ) -> results.TransactionEstimate:
        """Try a transaction without sending it: would it succeed, how much gas, what fee.

        The fee is gas x (base fee + priority fee) at the latest block, in wei and in the
        network's currency; max_fee_per_gas_wei (2 x base fee + tip) is what a wallet offers
        to stay valid while the base fee rises. If it would revert, ok is false and
        revert_reason says why.
        """
        endpoint = self.endpoint(network)
        account = user_address(sender, "sender")
        recipient = checksum_address(to, "to address")
        amount = wei_amount(value)
        calldata = hex_bytes(data, "data")
        # The simulation prices its fee too, but this one reports the base fee and tip it used.
        simulation, (base_fee, tip) = await asyncio.gather(
            simulate(self.rpc, endpoint, sender=account, to=recipient, value=amount, data=calldata),
            fee_per_gas(self.rpc, endpoint),
        )
        fee = None if simulation.gas is None else simulation.gas * (base_fee + tip)
        currency = self.networks[endpoint.name].currency
        return results.TransactionEstimate(
            network=endpoint.name,
            chain_id=endpoint.chain_id,
            sender=account,
            to=recipient,
            value_wei=str(amount),
            ok=simulation.ok,
            revert_reason=simulation.revert_reason,
            gas=simulation.gas,
            base_fee_wei=str(base_fee),
            priority_fee_wei=str(tip),
            max_fee_per_gas_wei=str(2 * base_fee + tip),
            fee_wei=None if fee is None else str(fee),
            fee=None if fee is None else format_units(fee, WEI_PER_ETH_DECIMALS),
            currency=currency,
        )

    async def get_current_time(
        self,
        network: Annotated[str | None, Field(description="Not used: the time is the same.")] = None,
    ) -> results.CurrentTime:
        """The current date and time in UTC (ISO-8601) and as a unix timestamp."""
        now = datetime.now(UTC)
        return results.CurrentTime(utc=iso_utc(now), unix=int(now.timestamp()))

    async def token_text(
        self, endpoint: Endpoint, token: str, function: Literal["name", "symbol"]
    ) -> str | None:
        """A token's name or symbol: a string, or bytes32 for old tokens (MKR); None if none."""
        call = abi.encode_call(abi.parse_signature(f"{function}()"), [])
        try:
            data = await self.eth_call(endpoint, token, call)
        except ToolError:
            return None
        for kind in ("string", "bytes32"):
            try:
                value = abi.decode_output((kind,), data)[0]
            except ValueError:
                continue
            if kind == "bytes32":
                value = bytes.fromhex(value[2:]).rstrip(b"\0").decode("utf-8", "replace")
            return str(value)
        return None

    def decode(
        self, endpoint: Endpoint, to: str, signature: abi.FunctionSignature, data: bytes
    ) -> list[Any]:
        """Decoded return data; empty data most often means there is no such contract."""
        assert signature.outputs is not None
        if not data and signature.outputs:
            raise ToolError(
                f"{signature.canonical} at {to} returned no data on {endpoint.label}: "
                "is it a contract on this network, with this function?"
            )
        try:
            return abi.decode_output(signature.outputs, data)
        except ValueError as error:
            raise ToolError(f"{signature.canonical} at {to}: {error}") from error

    def caller(self, endpoint: Endpoint) -> ens.Call:
        """Read-only calls on this network for `ens`, failing with this server's messages."""

        async def call(to: str, data: bytes) -> bytes:
            return await self.eth_call(endpoint, to, data)

        return call

    def ens_registry(self, endpoint: Endpoint) -> str:
        """The network's ENS registry, or an error saying where ENS exists."""
        registry = self.networks[endpoint.name].ens_registry
        if registry is None:
            raise ToolError(
                f"ENS is not available on {endpoint.label}; it exists on mainnet and Sepolia"
            )
        return checksum_address(registry, "ens_registry setting")

    async def proxy(self, endpoint: Endpoint, contract: str, code: bytes) -> results.Proxy | None:
        """The proxy standard the contract's code or storage shows, and its implementation."""
        if len(code) == 45 and code.startswith(CLONE_PREFIX) and code.endswith(CLONE_SUFFIX):
            return results.Proxy(
                kind="eip1167", implementation=checksum_address("0x" + code[10:30].hex())
            )
        implementation, beacon = await asyncio.gather(
            self.ask(endpoint, "eth_getStorageAt", contract, IMPLEMENTATION_SLOT, "latest"),
            self.ask(endpoint, "eth_getStorageAt", contract, BEACON_SLOT, "latest"),
        )
        if (target := _slot_address(implementation)) is not None:
            return results.Proxy(kind="eip1967", implementation=target)
        if (source := _slot_address(beacon)) is not None:
            ask = abi.parse_signature("implementation()(address)")
            data = await self.eth_call(endpoint, source, abi.encode_call(ask, []))
            target = str(self.decode(endpoint, source, ask, data)[0])
            return results.Proxy(kind="eip1967-beacon", implementation=target, beacon=source)
        return None


def user_address(value: str | None, what: str = "address") -> str:
    """A given address, checked; None means the chat app knew no wallet to fill in."""
    if value is None:
        raise ToolError(NO_WALLET)
    return checksum_address(value, what)


def _slot_address(value: Any) -> str | None:
    """The address held in the low 20 bytes of a storage slot; None for an empty slot."""
    held = quantity(value) & (2**160 - 1)
    return None if held == 0 else checksum_address(f"0x{held:040x}")


def build_server(networks: Mapping[str, Network], rpc: RpcClient) -> MCPServer[Any]:
    """The MCP server with every EVM tool; `rpc` must be open while it serves."""
    server: MCPServer[Any] = MCPServer("evm", instructions=INSTRUCTIONS)
    tools = EvmTools(networks, rpc)
    for tool in (
        tools.get_network_info,
        tools.get_balance,
        tools.get_block,
        tools.get_transaction,
        tools.get_transaction_receipt,
        tools.call_contract,
        tools.encode_function_call,
        tools.get_erc20_balance,
        tools.get_token_info,
        tools.get_code,
        tools.resolve_ens,
        tools.lookup_address,
        tools.estimate_transaction,
        tools.get_current_time,
    ):
        server.add_tool(tool_errors(tool), annotations=READ_ONLY)
    return server
