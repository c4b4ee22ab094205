"""Function signatures in, calldata out; return data in, JSON values out.

The signature convention is the one Foundry's `cast` uses, `name(inputTypes)(outputTypes)`,
e.g. `balanceOf(address)(uint256)`. Solidity-style text is read too (`function`, parameter
names, data locations, `view`/`external`, `returns (...)`), because models write it that way.

Values cross JSON, so integers go out as decimal strings (exact beyond 2**53), bytes as
0x-hex and addresses in their EIP-55 form; integers may come in as numbers or strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError, EncodingError, ParseError
from eth_abi.grammar import ABIType, BasicType, TupleType, normalize, parse
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chatbot.tools.evm.values import checksum_address, hex_bytes

_NAME = re.compile(r"\s*(?:function\s+)?([A-Za-z_$][A-Za-z0-9_$]*)\s*")
_TRAILING_WORD = re.compile(r"(.*\S)\s+[A-Za-z_$][A-Za-z0-9_$]*")
_MODIFIERS = re.compile(r"^(?:\s*\b(?:external|public|view|pure|payable|nonpayable|virtual)\b)*")
_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
_PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
_PANICS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialized function",
}


@dataclass(frozen=True)
class FunctionSignature:
    """A parsed signature: the canonical inputs always, the outputs when the caller gave them."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...] | None

    @property
    def canonical(self) -> str:
        """`name(type,...)`, the text whose keccak hash gives the selector."""
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def selector(self) -> bytes:
        """The first four bytes of the keccak-256 of the canonical signature."""
        return bytes(keccak(text=self.canonical)[:4])


def parse_signature(text: str) -> FunctionSignature:
    """Read `name(inputs)(outputs)` (or `name(inputs) returns (outputs)`); outputs are optional."""
    match = _NAME.match(text)
    if match is None or match.end() >= len(text) or text[match.end()] != "(":
        raise ValueError(
            f"{text!r} is not a function signature: write it as name(inputTypes)(outputTypes), "
            "e.g. balanceOf(address)(uint256)"
        )
    inside, position = _group(text, match.end())
    inputs = _types(inside)
    rest = _MODIFIERS.sub("", text[position:], count=1).strip()
    outputs: tuple[str, ...] | None = None
    if rest:
        if rest.startswith("returns"):
            rest = rest[len("returns") :].strip()
        if not rest.startswith("("):
            raise ValueError(f"{text!r}: after the inputs only (outputTypes) may follow")
        inside, position = _group(rest, 0)
        if rest[position:].strip():
            raise ValueError(f"{text!r}: unexpected text after the output types")
        outputs = _types(inside)
    return FunctionSignature(name=match.group(1), inputs=inputs, outputs=outputs)


def entry_signature(entry: Mapping[str, Any]) -> FunctionSignature:
    """The signature of a JSON ABI entry (function, event or error), outputs included if any.

    Explorers hand out JSON ABIs, where a struct is a `tuple` with `components`; the
    canonical text (and so the selector) spells it as `(type,...)`. Malformed entries raise
    `ValueError`: an ABI is third-party data.
    """
    name = entry.get("name")
    if not isinstance(name, str):
        raise ValueError(f"ABI entry {entry!r} has no name")
    text = f"{name}({','.join(_entry_types(entry.get('inputs')))})"
    if isinstance(entry.get("outputs"), list):
        text += f"({','.join(_entry_types(entry['outputs']))})"
    return parse_signature(text)


def encode_call(signature: FunctionSignature, args: list[Any]) -> bytes:
    """The calldata: selector, then the arguments ABI-encoded for the signature's inputs."""
    if len(args) != len(signature.inputs):
        raise ValueError(
            f"{signature.canonical} takes {len(signature.inputs)} argument(s), got {len(args)}"
        )
    values = [
        _coerce(_parsed(kind), value, f"argument {index + 1} ({kind})")
        for index, (kind, value) in enumerate(zip(signature.inputs, args, strict=True))
    ]
    try:
        encoded = encode(list(signature.inputs), values)
    except EncodingError as error:
        raise ValueError(f"the arguments do not fit {signature.canonical}: {error}") from None
    return signature.selector + bytes(encoded)


def decode_output(types: tuple[str, ...], data: bytes) -> list[Any]:
    """Return data decoded for `types`, as JSON values; `ValueError` when it does not fit."""
    try:
        decoded = decode(list(types), data)
    except DecodingError as error:
        raise ValueError(
            f"the {len(data)} byte(s) returned do not decode as ({','.join(types)}): {error}"
        ) from None
    return [_jsonable(_parsed(kind), value) for kind, value in zip(types, decoded, strict=True)]


def revert_reason(data: bytes) -> str:
    """Why a call reverted, read from its revert data: Error(string), Panic(uint256) or other."""
    if not data:
        return "no reason given"
    try:
        if data[:4] == _ERROR_SELECTOR:
            (reason,) = decode(["string"], data[4:])
            return str(reason)
        if data[:4] == _PANIC_SELECTOR:
            (code,) = decode(["uint256"], data[4:])
            return f"panic 0x{code:02x} ({_PANICS.get(code, 'unknown panic code')})"
    except DecodingError:
        pass
    return f"custom error 0x{data[:4].hex()} (data 0x{data.hex()})"


def _entry_types(params: Any) -> list[str]:
    """The types of a JSON ABI parameter list, tuples spelled out from their components."""
    if params is None:
        return []
    if not isinstance(params, list) or not all(isinstance(param, dict) for param in params):
        raise ValueError(f"ABI parameters {params!r} are not a list of objects")
    types = []
    for param in params:
        kind = param.get("type")
        if not isinstance(kind, str):
            raise ValueError(f"ABI parameter {param!r} has no type")
        if kind.startswith("tuple"):
            kind = f"({','.join(_entry_types(param.get('components')))}){kind[len('tuple') :]}"
        types.append(kind)
    return types


def _group(text: str, start: int) -> tuple[str, int]:
    """The text inside the parenthesis that opens at `start`, and the index after its match."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : index], index + 1
    raise ValueError(f"{text!r}: unbalanced parentheses")


def _types(text: str) -> tuple[str, ...]:
    """Canonical types from a comma-separated list (split at the top level only)."""
    if not text.strip():
        return ()
    parts: list[str] = []
    depth, begin = 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[begin:index])
            begin = index + 1
    parts.append(text[begin:])
    return tuple(_canonical_type(part) for part in parts)


def _canonical_type(text: str) -> str:
    """One type in canonical form (`uint` -> `uint256`), without names or data locations."""
    kind = text.strip()
    while (match := _TRAILING_WORD.fullmatch(kind)) is not None:
        kind = match.group(1)
    if kind.startswith("tuple("):
        kind = kind[len("tuple") :]
    if kind.startswith("("):
        inside, position = _group(kind, 0)
        kind = f"({','.join(_types(inside))}){kind[position:].replace(' ', '')}"
    try:
        return _type_text(_parsed(normalize(kind)))  # type: ignore[no-untyped-call]
    except (ParseError, ValueError) as error:
        raise ValueError(f"{text.strip()!r} is not a Solidity ABI type ({error})") from None


def _parsed(kind: str) -> ABIType:
    """The grammar tree of a type, checked against the ABI spec (e.g. no uint7)."""
    tree: ABIType = parse(kind)
    tree.validate()  # type: ignore[no-untyped-call]
    return tree


def _type_text(kind: ABIType) -> str:
    """The canonical text of a type tree (eth-abi leaves this method untyped)."""
    return str(kind.to_type_str())  # type: ignore[no-untyped-call]


def _coerce(kind: ABIType, value: Any, where: str) -> Any:
    """A JSON value as eth-abi encodes it for `kind`, or a `ValueError` naming `where`."""
    if kind.is_array:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list")
        dimension = kind.arrlist[-1]
        if dimension and len(value) != dimension[0]:
            raise ValueError(f"{where} must have {dimension[0]} item(s), got {len(value)}")
        item = kind.item_type
        return [_coerce(item, element, f"{where}[{i}]") for i, element in enumerate(value)]
    if isinstance(kind, TupleType):
        components = kind.components
        if not isinstance(value, list | tuple) or len(value) != len(components):
            raise ValueError(f"{where} must be a list of {len(components)} value(s)")
        return tuple(
            _coerce(component, element, f"{where}[{i}]")
            for i, (component, element) in enumerate(zip(components, value, strict=True))
        )
    if not isinstance(kind, BasicType):
        raise ValueError(f"{where}: type {_type_text(kind)} is not supported")
    base = kind.base
    if base == "address":
        if not isinstance(value, str):
            raise ValueError(f"{where} must be an address string")
        return checksum_address(value, where)
    if base in ("uint", "int"):
        return _integer(value, where)
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{where} must be true or false")
    if base == "bytes":
        if not isinstance(value, str):
            raise ValueError(f"{where} must be 0x-prefixed hex")
        data = hex_bytes(value, where)
        if kind.sub is not None and len(data) > kind.sub:
            raise ValueError(f"{where} has {len(data)} bytes, more than bytes{kind.sub} holds")
        return data
    if base == "string":
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string")
        return value
    if base in ("fixed", "ufixed"):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{where} must be a decimal number") from None
    raise ValueError(f"{where}: type {_type_text(kind)} is not supported")


def _integer(value: Any, where: str) -> int:
    """An integer from a JSON number or a decimal/0x-hex string; floats only when exact."""
    if isinstance(value, bool):
        raise ValueError(f"{where} must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.lower().startswith(("0x", "-0x")):
                return int(text, 16)
            return int(text, 10)
        except ValueError:
            pass
    raise ValueError(
        f"{where} must be an integer (a JSON number, or a decimal or 0x-hex string for large "
        f"values), got {value!r}"
    )


def _jsonable(kind: ABIType, value: Any) -> Any:
    """A decoded value as JSON: ints as decimal strings, bytes as hex, addresses checksummed."""
    if kind.is_array:
        item = kind.item_type
        return [_jsonable(item, element) for element in value]
    if isinstance(kind, TupleType):
        return [
            _jsonable(component, element)
            for component, element in zip(kind.components, value, strict=True)
        ]
    if not isinstance(kind, BasicType):
        return value
    base = kind.base
    if base == "address":
        return str(to_checksum_address(value))
    if base in ("uint", "int", "fixed", "ufixed"):
        return str(value)
    if base == "bytes":
        return "0x" + bytes(value).hex()
    return value
