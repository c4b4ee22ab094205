"""The app-side wallet tool: the agent proposes a transaction, the user's wallet decides.

The tool tries the transaction on the session's network from the user's address first
(`eth_call` + `eth_estimateGas`), so the user sees its fee, or a warning that it would
revert, before signing anything; then it creates the session's pending transaction and
returns at once. The wallet's answer arrives later (POST /api/wallet/result) as a system
note that starts the agent's next step.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

from eth_utils.address import is_checksum_address
from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.toolsets import FunctionToolset

from chatbot.agent.deps import TurnDeps
from chatbot.config import Network
from chatbot.errors import WalletTxPending
from chatbot.model import Simulation, TokenCall, WalletAccount, redact
from chatbot.tools.evm import abi
from chatbot.tools.evm.calldata import COMMON_FUNCTIONS, decode_call
from chatbot.tools.evm.rpc import (
    RpcClient,
    RpcError,
    RpcUnavailableError,
    endpoints,
)
from chatbot.tools.evm.simulate import simulate
from chatbot.tools.evm.values import format_units, hex_bytes

log = logging.getLogger("chatbot.wallet")

_HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
MAX_WEI = 2**256 - 1
ERC20_FUNCTIONS = COMMON_FUNCTIONS[:3]
"""transfer, approve and transferFrom: the calls a wallet user most needs in token units."""
DECIMALS = "0x" + abi.parse_signature("decimals()").selector.hex()
SYMBOL = "0x" + abi.parse_signature("symbol()").selector.hex()


class Preflight:
    """What the user should know of a proposal before signing, read from its network:
    how it fares when tried, and what it does to an ERC-20 token, in the token's units."""

    def __init__(self, networks: Mapping[str, Network], rpc: RpcClient) -> None:
        self.endpoints = endpoints(networks)
        self.rpc = rpc

    async def simulate(
        self, network: str, sender: str, to: str, value: int, data: bytes
    ) -> Simulation | None:
        """The outcome, or None when it cannot be known (the node is away)."""
        endpoint = self.endpoints.get(network)
        if endpoint is None:
            return None
        try:
            return await simulate(self.rpc, endpoint, sender=sender, to=to, value=value, data=data)
        except RpcUnavailableError as error:
            log.warning("simulation unavailable", extra={"network": network, "error": str(error)})
            return None

    async def token_call(self, network: str, to: str, data: bytes) -> TokenCall | None:
        """The ERC-20 transfer or approval `data` makes at `to`; None for anything else."""
        endpoint = self.endpoints.get(network)
        try:
            call = decode_call(data, ERC20_FUNCTIONS)
        except ValueError:
            return None
        if endpoint is None:
            return None
        try:
            raw_decimals, raw_symbol = await asyncio.gather(
                self.rpc.call(endpoint, "eth_call", {"to": to, "data": DECIMALS}, "latest"),
                self.rpc.call(endpoint, "eth_call", {"to": to, "data": SYMBOL}, "latest"),
            )
            decimals = int(abi.decode_output(("uint8",), hex_bytes(str(raw_decimals)))[0])
        except (RpcError, RpcUnavailableError, ValueError):
            return None  # not a token (or the node is away): the card shows the raw data
        try:
            (symbol,) = abi.decode_output(("string",), hex_bytes(str(raw_symbol)))
        except ValueError:
            symbol = None
        arguments = {argument.name: argument.value for argument in call.arguments}
        amount = int(arguments["value"])
        return TokenCall(
            function=call.name,
            token=to,
            symbol=symbol,
            decimals=decimals,
            amount=str(amount),
            amount_formatted="unlimited" if amount == MAX_WEI else format_units(amount, decimals),
            counterparty=arguments.get("spender") or arguments["to"],
        )


def wallet_toolset(preflight: Preflight | None = None) -> FunctionToolset[TurnDeps]:
    """The tools that talk to the user's wallet; without a preflight nothing is read first."""

    async def send_transaction_to_wallet(
        ctx: RunContext[TurnDeps], to: str, value: str, data: str = "0x", description: str = ""
    ) -> dict[str, Any]:
        return await propose(ctx, preflight, to, value, data, description)

    send_transaction_to_wallet.__doc__ = propose.__doc__
    toolset: FunctionToolset[TurnDeps] = FunctionToolset()
    toolset.add_function(send_transaction_to_wallet)
    return toolset


async def propose(
    ctx: RunContext[TurnDeps],
    preflight: Preflight | None,
    to: str,
    value: str,
    data: str = "0x",
    description: str = "",
) -> dict[str, Any]:
    """Ask the user's wallet to sign and send a transaction on the session's network.

    Only call this after the user agreed to the transaction. It is simulated first from
    the user's address: the result tells you its fee, or that it would revert and why
    (the user sees the same warning). The user approves or rejects it in their wallet;
    you will get a system note with the outcome.

    Args:
        ctx: The turn's context.
        to: Recipient or contract, as an EIP-55 checksummed address.
        value: Amount in wei, as a decimal string (e.g. "1000000000000000000" for 1 ETH).
        data: Calldata as 0x-prefixed hex ("0x" for a plain transfer).
        description: One sentence for the user saying what the transaction does.
    """
    if not is_checksum_address(to):
        raise ModelRetry(f"`to` must be a checksummed (EIP-55) address, got {to[:64]!r}.")
    value = value.strip()
    if not value.isascii() or not value.isdigit() or int(value) > MAX_WEI:
        raise ModelRetry("`value` must be a whole number of wei as a decimal string.")
    if not _HEX_DATA.fullmatch(data):
        raise ModelRetry("`data` must be 0x-prefixed hex with an even number of digits.")
    session = ctx.deps.session
    tried, token_call = None, None
    if preflight is not None:
        calldata = bytes.fromhex(data[2:])
        tried, token_call = await asyncio.gather(
            _simulate(preflight, ctx.deps.network, session.account, to, int(value), calldata),
            preflight.token_call(ctx.deps.network, to, calldata),
        )
    try:
        tx = session.propose_wallet_tx(
            to=to,
            value=str(int(value)),
            data=data.lower(),
            description=description.strip(),
            simulation=tried,
            token_call=token_call,
        )
    except WalletTxPending as error:
        raise ModelRetry(error.message) from None
    if tried is not None and not tried.ok:
        log.info("proposal would revert", extra={"session": redact(session.id)})
    return {
        "status": "pending",
        "tx_id": tx.id,
        "chain_id": tx.chain_id,
        "network": tx.network,
        "simulation": _simulation_note(tried, session.account is not None),
        "message": "Waiting for the user to approve or reject it in their wallet.",
    }


async def _simulate(
    preflight: Preflight,
    network: str,
    account: WalletAccount | None,
    to: str,
    value: int,
    data: bytes,
) -> Simulation | None:
    """Tried from the user's address; nothing to try from without one."""
    if account is None:
        return None
    return await preflight.simulate(network, account.address, to, value, data)


def _simulation_note(tried: Simulation | None, has_address: bool) -> dict[str, Any]:
    """What the agent is told of the simulation, in words it can pass on."""
    if tried is None:
        reason = (
            "the network's node could not be reached"
            if has_address
            else "the user's wallet address is unknown (no wallet connected)"
        )
        return {"ok": None, "note": f"Not simulated: {reason}. Tell the user the fee is unknown."}
    if not tried.ok:
        return {
            **tried.public(),
            "note": "The simulation says this transaction would REVERT"
            + (f": {tried.revert_reason}" if tried.revert_reason else "")
            + ". The user sees this warning; tell them, and suggest a fix if you know one.",
        }
    return {**tried.public(), "note": "The simulation succeeded; the fee is an estimate."}
