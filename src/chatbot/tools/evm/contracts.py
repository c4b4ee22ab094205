"""The contract tools: a verified contract's ABI, and what a transaction's calldata calls.

They sit beside the chain tools of server.py (`add_contract_tools` registers them on its
server) and, like them, take the session's `network` on every call and report anticipated
failures as tool errors. A failed ABI lookup does not stop `decode_calldata`: it falls back
to the built-in table of common token functions and says so in `note`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from typing_extensions import TypedDict

from chatbot.config import Network
from chatbot.tools.evm import abi, calldata
from chatbot.tools.evm.explorer import (
    ContractNotVerifiedError,
    ContractSources,
    ExplorerError,
    Source,
    VerifiedAbi,
)
from chatbot.tools.evm.server import READ_ONLY, Address, NetworkName, tool_errors
from chatbot.tools.evm.values import checksum_address, hex_bytes

# Enough for any real contract's interface; beyond it the ABI costs more context than it helps.
MAX_ABI_ENTRIES = 200
BUILTIN_NOTE = (
    "decoded with the built-in table of common ERC-20/ERC-721 functions, not a verified ABI: "
    "the argument names are the standards' own"
)


class ContractAbi(TypedDict):
    """What `get_contract_abi` returns."""

    network: str
    chain_id: int
    address: str
    source: Source
    match: str | None
    functions: list[str]
    read_functions: list[str]
    events: list[str]
    errors: list[str]
    abi: list[dict[str, Any]]
    abi_entries_left_out: int


class CallArgument(TypedDict):
    """One decoded argument of `decode_calldata`."""

    name: str
    type: str
    value: Any


class DecodedCalldata(TypedDict):
    """What `decode_calldata` returns."""

    function: str
    signature: str
    selector: str
    args: list[CallArgument]
    to: str | None
    abi_source: Source | Literal["builtin"]
    note: str | None


class ContractTools:
    """The contract tools, bound to the configured networks and the ABI sources."""

    def __init__(self, networks: Mapping[str, Network], sources: ContractSources) -> None:
        self.chain_ids = {name: network.chain_id for name, network in networks.items()}
        self.sources = sources

    def chain_id(self, network: str) -> int:
        """The named network's chain id, or an error listing the names this server knows."""
        found = self.chain_ids.get(network)
        if found is None:
            known = ", ".join(sorted(self.chain_ids)) or "none"
            raise ToolError(f"unknown network {network!r}; this server knows: {known}")
        return found

    async def get_contract_abi(self, network: NetworkName, address: Address) -> ContractAbi:
        """The verified ABI of a contract, from Etherscan (when configured) or Sourcify.

        `functions` lists canonical signatures; `read_functions` lists the view/pure ones as
        name(inputs)(outputs), ready for call_contract. `abi` holds the function, event and
        error entries (at most 200).
        """
        chain_id = self.chain_id(network)
        try:
            found = await self.sources.abi(chain_id, address, network)
        except ExplorerError as error:
            raise ToolError(str(error)) from None
        kept = [entry for entry in found.abi if entry.get("type") in ("function", "event", "error")]
        functions = _signatures(found, "function")
        return ContractAbi(
            network=network,
            chain_id=found.chain_id,
            address=found.address,
            source=found.source,
            match=found.match,
            functions=[signature.canonical for _, signature in functions],
            read_functions=[
                f"{signature.canonical}({','.join(signature.outputs or ())})"
                for entry, signature in functions
                # `constant` is how ABIs from before Solidity 0.5 mark a view
                if entry.get("stateMutability") in ("view", "pure") or entry.get("constant")
            ],
            events=[signature.canonical for _, signature in _signatures(found, "event")],
            errors=[signature.canonical for _, signature in _signatures(found, "error")],
            abi=kept[:MAX_ABI_ENTRIES],
            abi_entries_left_out=max(0, len(kept) - MAX_ABI_ENTRIES),
        )

    async def decode_calldata(
        self,
        network: NetworkName,
        data: Annotated[
            str, Field(description="The 0x-hex calldata (a transaction's input or `data`).")
        ],
        to: Annotated[
            str | None,
            Field(
                description="The called contract: its verified ABI names the function and "
                "arguments. Leave out to decode common ERC-20/ERC-721 calls only."
            ),
        ] = None,
    ) -> DecodedCalldata:
        """Decode calldata into the function it calls and its named arguments.

        With `to`, the contract's verified ABI is used; without it, or when the contract is
        not verified, a built-in table of common token calls (transfer, approve,
        transferFrom, safeTransferFrom, setApprovalForAll), and `note` says so.
        """
        raw = hex_bytes(data, "data")
        calldata.selector_of(raw)  # too short to call anything: say so before any lookup
        if to is None:
            return _builtin(raw, None, None)
        contract = checksum_address(to, "contract address")
        try:
            found = await self.sources.abi(self.chain_id(network), contract, network)
        except ContractNotVerifiedError:
            why = f"{contract} is not verified on {self.sources.services}"
            return _builtin(raw, contract, why)
        except ExplorerError as error:
            return _builtin(raw, contract, str(error))
        try:
            return _decoded(raw, contract, found.abi, found.source, None)
        except calldata.UnknownSelectorError:
            why = (
                f"the verified ABI of {contract} has no function with this selector (if it is a "
                "proxy, its implementation's ABI has it)"
            )
            return _builtin(raw, contract, why)


def add_contract_tools(server: MCPServer[Any], tools: ContractTools) -> None:
    """Register the contract tools on the EVM server, read-only like the chain tools."""
    for tool in (tools.get_contract_abi, tools.decode_calldata):
        server.add_tool(tool_errors(tool), annotations=READ_ONLY)


def _signatures(
    found: VerifiedAbi, kind: str
) -> list[tuple[dict[str, Any], abi.FunctionSignature]]:
    """The ABI's entries of one kind with their signatures; malformed entries are skipped."""
    parsed = []
    for entry in found.abi:
        if entry.get("type") != kind:
            continue
        try:
            parsed.append((entry, abi.entry_signature(entry)))
        except ValueError:
            continue  # third-party data: one bad entry must not hide the rest
    return parsed


def _builtin(raw: bytes, contract: str | None, why: str | None) -> DecodedCalldata:
    """Decode with the built-in table: no contract was named, or its ABI failed us (`why`)."""
    note = BUILTIN_NOTE if why is None else f"{why}; {BUILTIN_NOTE}"
    try:
        return _decoded(raw, contract, calldata.COMMON_FUNCTIONS, "builtin", note)
    except calldata.UnknownSelectorError as error:
        hint = why or "give `to`, the contract called, to decode with its verified ABI"
        raise ToolError(
            f"cannot decode selector {error.selector}: it is not one of the common "
            f"ERC-20/ERC-721 functions this server knows; {hint}"
        ) from None


def _decoded(
    raw: bytes,
    contract: str | None,
    entries: Sequence[Mapping[str, Any]],
    source: Source | Literal["builtin"],
    note: str | None,
) -> DecodedCalldata:
    """The decoded call as the tool returns it; `UnknownSelectorError` if `entries` lack it."""
    call = calldata.decode_call(raw, entries)
    return DecodedCalldata(
        function=call.name,
        signature=call.signature,
        selector=call.selector,
        args=[
            CallArgument(name=argument.name, type=argument.type, value=argument.value)
            for argument in call.arguments
        ],
        to=contract,
        abi_source=source,
        note=note,
    )
