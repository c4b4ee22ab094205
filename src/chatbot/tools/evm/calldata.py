"""Calldata back into a call: the function its selector names, and its arguments by name.

A contract's JSON ABI gives every function's types and parameter names. Without one (an
unverified contract, or no contract named), `COMMON_FUNCTIONS` still reads the calls a
wallet user meets most: token transfers and approvals. Values come out as JSON the way
abi.py writes them (integers as decimal strings, bytes as 0x-hex, EIP-55 addresses), and
a struct with named fields as an object, so the model reads `{"amountIn": ...}`, not a
bare list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.tools.evm import abi


def _function(name: str, *params: tuple[str, str]) -> dict[str, Any]:
    """A JSON ABI function entry from (type, name) pairs."""
    inputs = [{"name": param_name, "type": kind} for kind, param_name in params]
    return {"type": "function", "name": name, "inputs": inputs}


# The ERC-20 and ERC-721 calls that move or expose assets, with the standards' own names.
# ERC-721's transferFrom(address,address,uint256) shares ERC-20's selector, so the ERC-20
# entry (which says `value`) reads both.
COMMON_FUNCTIONS: tuple[dict[str, Any], ...] = (
    _function("transfer", ("address", "to"), ("uint256", "value")),
    _function("approve", ("address", "spender"), ("uint256", "value")),
    _function("transferFrom", ("address", "from"), ("address", "to"), ("uint256", "value")),
    _function("safeTransferFrom", ("address", "from"), ("address", "to"), ("uint256", "tokenId")),
    _function(
        "safeTransferFrom",
        ("address", "from"),
        ("address", "to"),
        ("uint256", "tokenId"),
        ("bytes", "data"),
    ),
    _function("setApprovalForAll", ("address", "operator"), ("bool", "approved")),
)


@dataclass(frozen=True)
class Argument:
    """One decoded argument: its ABI name (or argN when unnamed), canonical type and value."""

    name: str
    type: str
    value: Any


@dataclass(frozen=True)
class DecodedCall:
    """Which function the calldata calls, and with what."""

    name: str
    signature: str
    selector: str
    arguments: tuple[Argument, ...]


class UnknownSelectorError(ValueError):
    """No function of the ABI has the calldata's selector; another ABI may know it."""

    def __init__(self, selector: str) -> None:
        super().__init__(f"no known function has the selector {selector}")
        self.selector = selector


def selector_of(data: bytes) -> str:
    """The 0x-hex selector that starts calldata; `ValueError` if the data is too short."""
    if len(data) < 4:
        raise ValueError(
            f"calldata must start with a 4-byte function selector; got {len(data)} byte(s)"
        )
    return "0x" + data[:4].hex()


def decode_call(data: bytes, entries: Sequence[Mapping[str, Any]]) -> DecodedCall:
    """Decode calldata against a JSON ABI: `UnknownSelectorError` if no function matches."""
    selector = selector_of(data)
    entry, signature = _function_for(data[:4], entries)
    try:
        values = abi.decode_output(signature.inputs, data[4:])
    except ValueError:
        raise ValueError(
            f"the calldata has selector {selector} of {signature.canonical}, but its "
            f"{len(data) - 4} argument byte(s) do not decode as ({','.join(signature.inputs)}): "
            "is it truncated?"
        ) from None
    params = entry.get("inputs") or []
    arguments = tuple(
        Argument(
            name=str(param.get("name") or f"arg{index}"),
            type=kind,
            value=_named(param, value),
        )
        for index, (param, kind, value) in enumerate(
            zip(params, signature.inputs, values, strict=True)
        )
    )
    return DecodedCall(
        name=signature.name,
        signature=signature.canonical,
        selector=selector,
        arguments=arguments,
    )


def _function_for(
    selector: bytes, entries: Sequence[Mapping[str, Any]]
) -> tuple[Mapping[str, Any], abi.FunctionSignature]:
    """The ABI's function entry with this selector, and its parsed signature."""
    for entry in entries:
        if entry.get("type", "function") != "function":
            continue
        try:
            signature = abi.entry_signature(entry)
        except ValueError:
            continue  # one malformed entry must not hide the others
        if signature.selector == selector:
            return entry, signature
    raise UnknownSelectorError("0x" + selector.hex())


def _named(param: Mapping[str, Any], value: Any) -> Any:
    """A decoded value with each struct as an object of its fields, when they all have names."""
    kind = str(param.get("type", ""))
    if not kind.startswith("tuple"):
        return value
    if kind != "tuple":  # an array of structs: name the fields of each item
        item = {**param, "type": kind[: kind.rindex("[")]}
        return [_named(item, element) for element in value]
    components = param.get("components") or []
    names = [str(component.get("name") or "") for component in components]
    if not all(names) or len(set(names)) != len(names):
        return [_named(c, element) for c, element in zip(components, value, strict=True)]
    return {
        name: _named(component, element)
        for name, component, element in zip(names, components, value, strict=True)
    }
