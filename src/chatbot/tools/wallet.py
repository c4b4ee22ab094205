"""The app-side wallet tool: the agent proposes a transaction, the user's wallet decides.

The tool only creates the session's pending transaction and returns at once; the
wallet's answer arrives later (POST /api/wallet/result) as a system note that
starts the agent's next step.
"""

from __future__ import annotations

import re
from typing import Any

from eth_utils.address import is_checksum_address
from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.toolsets import FunctionToolset

from chatbot.agent.deps import TurnDeps
from chatbot.errors import WalletTxPending

_HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
MAX_WEI = 2**256 - 1


def wallet_toolset() -> FunctionToolset[TurnDeps]:
    """The tools that talk to the user's wallet."""
    toolset: FunctionToolset[TurnDeps] = FunctionToolset()
    toolset.add_function(send_transaction_to_wallet)
    return toolset


async def send_transaction_to_wallet(
    ctx: RunContext[TurnDeps], to: str, value: str, data: str = "0x", description: str = ""
) -> dict[str, Any]:
    """Ask the user's wallet to sign and send a transaction on the session's network.

    Only call this after the user agreed to the transaction. The user approves or
    rejects it in their wallet; you will get a system note with the outcome.

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
    try:
        tx = ctx.deps.session.propose_wallet_tx(
            to=to, value=str(int(value)), data=data.lower(), description=description.strip()
        )
    except WalletTxPending as error:
        raise ModelRetry(error.message) from None
    return {
        "status": "pending",
        "tx_id": tx.id,
        "chain_id": tx.chain_id,
        "network": tx.network,
        "message": "Waiting for the user to approve or reject it in their wallet.",
    }
