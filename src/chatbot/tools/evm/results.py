"""The JSON shapes the tools return, and how raw JSON-RPC objects become them.

Node objects are hex-encoded and camelCase; the model reads snake_case with plain numbers
better. Counters (block numbers, gas, nonces) stay JSON numbers; amounts of wei become
decimal strings, exact at any size. Every chain result names its network and chain id,
so an answer can never be mistaken for another network's.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from eth_utils.address import to_checksum_address
from typing_extensions import TypedDict

from chatbot.model import iso_utc
from chatbot.tools.evm.rpc import Endpoint
from chatbot.tools.evm.values import (
    WEI_PER_ETH_DECIMALS,
    format_units,
    optional_quantity,
    quantity,
    wei_text,
)

MAX_BLOCK_TRANSACTIONS = 100


class NetworkInfo(TypedDict):
    """What `get_network_info` returns."""

    network: str
    chain_id: int
    configured_chain_id: int
    block_number: int
    gas_price_wei: str
    client_version: str | None


class Balance(TypedDict):
    """What `get_balance` returns."""

    network: str
    chain_id: int
    address: str
    balance_wei: str
    balance_eth: str


class Block(TypedDict):
    """What `get_block` returns; `transactions` holds at most the first 100 hashes."""

    network: str
    chain_id: int
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    time: str
    miner: str
    gas_used: int
    gas_limit: int
    base_fee_per_gas_wei: str | None
    transaction_count: int
    transactions: list[str]


Transaction = TypedDict(
    "Transaction",
    {
        "network": str,
        "chain_id": int,
        "hash": str,
        "block_number": int | None,
        "block_hash": str | None,
        "transaction_index": int | None,
        "from": str,
        "to": str | None,
        "value_wei": str,
        "value_eth": str,
        "nonce": int,
        "gas": int,
        "gas_price_wei": str | None,
        "max_fee_per_gas_wei": str | None,
        "max_priority_fee_per_gas_wei": str | None,
        "input": str,
        "type": int | None,
    },
)


class Log(TypedDict):
    """One event log of a receipt, undecoded."""

    address: str
    topics: list[str]
    data: str
    log_index: int | None


Receipt = TypedDict(
    "Receipt",
    {
        "network": str,
        "chain_id": int,
        "transaction_hash": str,
        "status": int | None,
        "succeeded": bool | None,
        "block_number": int,
        "block_hash": str,
        "transaction_index": int,
        "from": str,
        "to": str | None,
        "contract_address": str | None,
        "gas_used": int,
        "effective_gas_price_wei": str | None,
        "logs": list[Log],
    },
)


class ContractCall(TypedDict):
    """What `call_contract` returns; `result` is null when no output types were given."""

    network: str
    chain_id: int
    to: str
    function: str
    outputs: list[str] | None
    result: list[Any] | None
    raw: str


class EncodedCall(TypedDict):
    """What `encode_function_call` returns."""

    function: str
    selector: str
    data: str


class TokenBalance(TypedDict):
    """What `get_erc20_balance` returns."""

    network: str
    chain_id: int
    token: str
    owner: str
    balance: str
    decimals: int
    symbol: str | None
    formatted: str


class Proxy(TypedDict):
    """The proxy standard a contract follows and the contract its calls run in.

    `beacon` is there for an EIP-1967 beacon proxy only: the beacon names the implementation.
    """

    kind: Literal["eip1967", "eip1967-beacon", "eip1167"]
    implementation: str
    beacon: NotRequired[str]


class Code(TypedDict):
    """What `get_code` returns; `proxy` is null for an account or a contract that is no proxy."""

    network: str
    chain_id: int
    address: str
    is_contract: bool
    code_size: int
    proxy: Proxy | None


class TokenInfo(TypedDict):
    """What `get_token_info` returns; name and symbol are null when the token has none."""

    network: str
    chain_id: int
    token: str
    name: str | None
    symbol: str | None
    decimals: int
    total_supply: str
    total_supply_formatted: str


class EnsResolution(TypedDict):
    """What `resolve_ens` returns; `name` as it was looked up (trimmed, lowercased)."""

    network: str
    chain_id: int
    name: str
    address: str
    resolver: str


class EnsPrimaryName(TypedDict):
    """What `lookup_address` returns: a primary name checked to resolve back to the address."""

    network: str
    chain_id: int
    address: str
    name: str


class TransactionEstimate(TypedDict):
    """What `estimate_transaction` returns; gas and fee are null when it would revert.

    `fee` is `fee_wei` in the network's native currency, which `currency` names.
    """

    network: str
    chain_id: int
    sender: str
    to: str
    value_wei: str
    ok: bool
    revert_reason: str | None
    gas: int | None
    base_fee_wei: str
    priority_fee_wei: str
    max_fee_per_gas_wei: str
    fee_wei: str | None
    fee: str | None
    currency: str


class CurrentTime(TypedDict):
    """What `get_current_time` returns."""

    utc: str
    unix: int


def _address(value: Any) -> str | None:
    """A node's (lowercase) address in EIP-55 form, ready to pass on to a wallet; null stays."""
    return None if value is None else str(to_checksum_address(value))


def block(endpoint: Endpoint, raw: dict[str, Any]) -> Block:
    """A node's block object (with transaction hashes) in the tool's shape."""
    timestamp = quantity(raw["timestamp"])
    hashes = [item if isinstance(item, str) else item["hash"] for item in raw["transactions"]]
    return Block(
        network=endpoint.name,
        chain_id=endpoint.chain_id,
        number=quantity(raw["number"]),
        hash=raw["hash"],
        parent_hash=raw["parentHash"],
        timestamp=timestamp,
        time=iso_utc(timestamp),
        miner=str(_address(raw["miner"])),
        gas_used=quantity(raw["gasUsed"]),
        gas_limit=quantity(raw["gasLimit"]),
        base_fee_per_gas_wei=wei_text(raw.get("baseFeePerGas")),
        transaction_count=len(hashes),
        transactions=hashes[:MAX_BLOCK_TRANSACTIONS],
    )


def transaction(endpoint: Endpoint, raw: dict[str, Any]) -> Transaction:
    """A node's transaction object in the tool's shape (block fields null while pending)."""
    value = quantity(raw["value"])
    return {
        "network": endpoint.name,
        "chain_id": endpoint.chain_id,
        "hash": raw["hash"],
        "block_number": optional_quantity(raw.get("blockNumber")),
        "block_hash": raw.get("blockHash"),
        "transaction_index": optional_quantity(raw.get("transactionIndex")),
        "from": str(_address(raw["from"])),
        "to": _address(raw.get("to")),
        "value_wei": str(value),
        "value_eth": format_units(value, WEI_PER_ETH_DECIMALS),
        "nonce": quantity(raw["nonce"]),
        "gas": quantity(raw["gas"]),
        "gas_price_wei": wei_text(raw.get("gasPrice")),
        "max_fee_per_gas_wei": wei_text(raw.get("maxFeePerGas")),
        "max_priority_fee_per_gas_wei": wei_text(raw.get("maxPriorityFeePerGas")),
        "input": raw.get("input", "0x"),
        "type": optional_quantity(raw.get("type")),
    }


def receipt(endpoint: Endpoint, raw: dict[str, Any]) -> Receipt:
    """A node's receipt in the tool's shape; `status` is 1 for success, 0 for a revert."""
    status = optional_quantity(raw.get("status"))
    return {
        "network": endpoint.name,
        "chain_id": endpoint.chain_id,
        "transaction_hash": raw["transactionHash"],
        "status": status,
        "succeeded": None if status is None else status == 1,
        "block_number": quantity(raw["blockNumber"]),
        "block_hash": raw["blockHash"],
        "transaction_index": quantity(raw["transactionIndex"]),
        "from": str(_address(raw["from"])),
        "to": _address(raw.get("to")),
        "contract_address": _address(raw.get("contractAddress")),
        "gas_used": quantity(raw["gasUsed"]),
        "effective_gas_price_wei": wei_text(raw.get("effectiveGasPrice")),
        "logs": [
            Log(
                address=str(_address(log["address"])),
                topics=list(log["topics"]),
                data=log["data"],
                log_index=optional_quantity(log.get("logIndex")),
            )
            for log in raw.get("logs", [])
        ],
    }
