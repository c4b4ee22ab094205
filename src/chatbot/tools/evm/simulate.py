"""Trying a transaction before it is sent: would it succeed, and what would its gas and fee be.

The EVM server's `estimate_transaction` tool and the chat app's wallet tool both ask this,
so it depends on the JSON-RPC client and the ABI helpers only, not on the MCP SDK.
`Simulation` is the app's own record of the outcome (stored with a proposed transaction),
re-exported here so callers of `simulate` need import nothing else.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chatbot.model import Simulation
from chatbot.tools.evm import abi
from chatbot.tools.evm.rpc import Endpoint, RpcClient, RpcError, RpcUnavailableError
from chatbot.tools.evm.values import format_units, quantity, revert_data

__all__ = ["Simulation", "fee_per_gas", "simulate"]


async def fee_per_gas(rpc: RpcClient, endpoint: Endpoint) -> tuple[int, int]:
    """(base fee, priority fee) in wei per gas for a transaction sent now.

    The tip is the node's suggestion (eth_maxPriorityFeePerGas); a node without that method
    implies one as gas price minus base fee. A chain without a base fee (before London) gets
    a base of 0 and its whole gas price as the tip, so gas * (base + tip) is its fee too.
    """
    block, tip, gas_price = await asyncio.gather(
        _ask(rpc, endpoint, "eth_getBlockByNumber", "latest", False),
        _attempt(rpc, endpoint, "eth_maxPriorityFeePerGas"),
        _ask(rpc, endpoint, "eth_gasPrice"),
    )
    price = quantity(gas_price)
    base = block.get("baseFeePerGas") if isinstance(block, dict) else None
    if base is None:
        return 0, price
    base_fee = quantity(base)
    if isinstance(tip, RpcError):
        return base_fee, max(price - base_fee, 0)
    return base_fee, quantity(tip)


async def simulate(
    rpc: RpcClient, endpoint: Endpoint, *, sender: str | None, to: str, value: int, data: bytes
) -> Simulation:
    """Whether the transaction would succeed at the latest block, its gas and fee, or why not.

    eth_call reports a revert's data most reliably (some nodes' eth_estimateGas errors carry
    none), eth_estimateGas the gas; both run at once, with the fee queries. A JSON-RPC error
    from either means the transaction would fail as it stands (a revert, or a sender short
    of funds), which is an outcome, not an exception: only a node that cannot be asked
    raises (`RpcUnavailableError`).
    """
    tx = {"to": to, "value": hex(value), "data": "0x" + data.hex()}
    if sender is not None:
        tx["from"] = sender
    called, estimated, (base_fee, tip), balance = await asyncio.gather(
        _attempt(rpc, endpoint, "eth_call", tx, "latest"),
        _attempt(rpc, endpoint, "eth_estimateGas", tx),
        fee_per_gas(rpc, endpoint),
        _balance(rpc, endpoint, sender),
    )
    for outcome in (called, estimated):
        if isinstance(outcome, RpcError):
            return Simulation(ok=False, revert_reason=_reason(outcome))
    gas = quantity(estimated)
    fee = gas * (base_fee + tip)
    # Some nodes (Hardhat among them) call and estimate without checking the sender's
    # funds; the wallet would refuse such a transaction, so say so here.
    if balance is not None and balance < value + fee:
        return Simulation(
            ok=False,
            revert_reason=f"insufficient funds: the sender holds {format_units(balance, 18)} "
            f"and this needs {format_units(value + fee, 18)} (value + fee, in the network's "
            "native currency)",
        )
    return Simulation(ok=True, gas=gas, fee_wei=fee)


async def _balance(rpc: RpcClient, endpoint: Endpoint, sender: str | None) -> int | None:
    """The sender's balance, when there is a sender."""
    if sender is None:
        return None
    return quantity(await _ask(rpc, endpoint, "eth_getBalance", sender, "latest"))


def _reason(error: RpcError) -> str:
    """The decoded revert reason when the node sent the revert data, else the node's message."""
    data = revert_data(error.data)
    return error.message if data is None else abi.revert_reason(data)


async def _attempt(rpc: RpcClient, endpoint: Endpoint, method: str, *params: Any) -> Any:
    """The result of a call whose JSON-RPC error is an answer too: the `RpcError` is returned."""
    try:
        return await rpc.call(endpoint, method, *params)
    except RpcError as error:
        return error


async def _ask(rpc: RpcClient, endpoint: Endpoint, method: str, *params: Any) -> Any:
    """A call the fee needs: a node that refuses it cannot price anything, as if it were away."""
    try:
        return await rpc.call(endpoint, method, *params)
    except RpcError as error:
        raise RpcUnavailableError(f"{endpoint.label} refused {method}: {error.message}") from None
