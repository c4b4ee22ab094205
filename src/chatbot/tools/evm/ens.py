"""ENS: names to addresses and addresses to their primary names, through a network's registry.

Only the on-chain core of ENS is here: the ENSIP-1 namehash, then registry -> resolver ->
record. Names are normalised simply (trimmed and lowercased), not by full ENSIP-15, and
wildcard (ENSIP-10) and offchain (CCIP-read) resolution are not attempted. Failures are
`ValueError`s written for the model, like the other input checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from eth_utils.crypto import keccak

from chatbot.tools.evm import abi

Call = Callable[[str, bytes], Awaitable[bytes]]
"""A read-only call (contract address, calldata) -> return data, failing as the caller likes."""

_RESOLVER = abi.parse_signature("resolver(bytes32)(address)")
_ADDR = abi.parse_signature("addr(bytes32)(address)")
_NAME = abi.parse_signature("name(bytes32)(string)")
_NONE = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class Resolution:
    """A name, as normalised, and where it points."""

    name: str
    resolver: str
    address: str


def normalise(name: str) -> str:
    """The name as hashed here: trimmed and lowercased, with no empty label."""
    text = name.strip().lower()
    if not text:
        raise ValueError("an ENS name is needed, e.g. vitalik.eth")
    if "" in text.split("."):
        raise ValueError(
            f"{name!r} is not an ENS name: it has an empty label "
            "(a leading, trailing or double dot)"
        )
    return text


def namehash(name: str) -> bytes:
    """ENSIP-1: each label's node is keccak(parent node + keccak(label)), from 32 zero bytes."""
    node = bytes(32)
    for label in reversed(normalise(name).split(".")):
        node = keccak(node + keccak(text=label))
    return node


async def resolve(call: Call, registry: str, name: str, where: str) -> Resolution:
    """The address a name points to; not found (a `ValueError`) without resolver or record."""
    normal = normalise(name)
    node = namehash(normal)
    resolver = await _resolver(call, registry, node, where)
    if resolver is None:
        raise ValueError(f"the ENS name {normal!r} was not found on {where}: it has no resolver")
    address = _decoded("address", await call(resolver, _encode(_ADDR, node)), resolver)
    if address == _NONE:
        raise ValueError(
            f"the ENS name {normal!r} was not found on {where}: it has no address record"
        )
    return Resolution(name=normal, resolver=resolver, address=address)


async def primary_name(call: Call, registry: str, address: str, where: str) -> str:
    """The address's primary name: its reverse record, trusted only if it resolves back.

    Anyone may write any name into their own reverse record; the forward resolution is
    what shows that the name's owner agrees.
    """
    node = namehash(f"{address[2:].lower()}.addr.reverse")
    resolver = await _resolver(call, registry, node, where)
    name = ""
    if resolver is not None:
        name = _decoded("string", await call(resolver, _encode(_NAME, node)), resolver)
    if not name:
        raise ValueError(f"{address} has no primary ENS name on {where}: no reverse record")
    claim = f"the reverse record of {address} on {where} names {name!r}, but that name"
    try:
        forward = await resolve(call, registry, name, where)
    except ValueError as error:
        raise ValueError(f"{claim} does not resolve ({error}), so it is not verified") from None
    if forward.address != address:
        raise ValueError(
            f"{claim} resolves to {forward.address}, not back to {address}, so it is not "
            "the address's verified primary name"
        )
    return forward.name


async def _resolver(call: Call, registry: str, node: bytes, where: str) -> str | None:
    """The node's resolver in the registry, None when it has none."""
    data = await call(registry, _encode(_RESOLVER, node))
    if not data:
        raise ValueError(f"the ENS registry {registry} returned no data on {where}: is it there?")
    resolver = _decoded("address", data, registry)
    return None if resolver == _NONE else resolver


def _encode(signature: abi.FunctionSignature, node: bytes) -> bytes:
    """The calldata of a function that takes a node (bytes32, which goes in as 0x-hex)."""
    return abi.encode_call(signature, ["0x" + node.hex()])


def _decoded(kind: str, data: bytes, contract: str) -> str:
    """One returned value of `kind`, as a JSON string (addresses in EIP-55 form)."""
    try:
        return str(abi.decode_output((kind,), data)[0])
    except ValueError as error:
        raise ValueError(f"the ENS contract {contract} returned unexpected data: {error}") from None
