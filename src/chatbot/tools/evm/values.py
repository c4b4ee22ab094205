"""Checking what callers send (addresses, hashes) and formatting what chains return.

Every check raises `ValueError` with a message written for the model that made the call,
so a mistake reads as a tool error it can correct rather than as a crash.
"""

from __future__ import annotations

import re
from typing import Any

from eth_utils.address import is_checksum_address, to_checksum_address

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
WEI_PER_ETH_DECIMALS = 18


def checksum_address(value: str, what: str = "address") -> str:
    """The EIP-55 form of an address; a mixed-case address must already carry a valid checksum.

    All-lowercase (or all-uppercase) input has no checksum to verify and is accepted. A
    mixed-case address whose checksum fails is refused and not "corrected": a bad checksum
    usually means a mistyped address, and fixing it up would hide the typo.
    """
    text = value.strip()
    if not _ADDRESS.fullmatch(text):
        raise ValueError(
            f"{what} {value!r} is not an Ethereum address: expected 0x followed by 40 hex digits"
        )
    digits = text[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(text):
        raise ValueError(
            f"{what} {text} has an invalid EIP-55 checksum (its mixed upper/lower case does not "
            "match); it is probably mistyped: check the address"
        )
    return str(to_checksum_address(text))


def transaction_hash(value: str) -> str:
    """A 32-byte hash as lowercase 0x-hex, or a clear error."""
    text = value.strip()
    if not _HASH.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a transaction hash: expected 0x followed by 64 hex digits"
        )
    return text.lower()


def hex_bytes(value: str, what: str = "data") -> bytes:
    """Bytes from 0x-prefixed hex with whole bytes, or a clear error."""
    text = value.strip()
    if not _HEX.fullmatch(text):
        raise ValueError(f"{what} {value!r} is not 0x-prefixed hex of whole bytes")
    return bytes.fromhex(text[2:])


def wei_amount(value: str, what: str = "value") -> int:
    """A whole number of wei from a decimal string, within uint256, or a clear error."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) >= 2**256:
        raise ValueError(
            f"{what} {value!r} is not an amount of wei: give a whole number as a decimal string "
            "(1 ETH is 1000000000000000000 wei)"
        )
    return int(text)


def quantity(value: Any) -> int:
    """A JSON-RPC quantity (0x-hex) as an int."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError(f"the node returned {value!r} where a hex quantity belongs")
    return int(value, 16)


def optional_quantity(value: Any) -> int | None:
    """A quantity that the node may leave out or send as null (pending, legacy fields)."""
    return None if value is None else quantity(value)


def wei_text(value: Any) -> str | None:
    """A wei quantity as a decimal string: exact, and safe for JSON readers with 53-bit numbers."""
    amount = optional_quantity(value)
    return None if amount is None else str(amount)


def format_units(amount: int, decimals: int) -> str:
    """`amount / 10**decimals` exactly, without trailing zeros ("1.5", "10000")."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals) if decimals > 0 else (abs(amount), 0)
    if fraction == 0:
        return f"{sign}{whole}"
    digits = str(fraction).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{digits}"


def revert_data(error_data: Any) -> bytes | None:
    """The revert bytes in a JSON-RPC error's `data`: a hex string, or nested one level.

    Nodes differ: geth puts the hex in `data`, Hardhat and some providers wrap it in an
    object with its own `data`; anything else (or no data) means the node gave none.
    """
    if isinstance(error_data, dict):
        error_data = error_data.get("data")
    if isinstance(error_data, str):
        try:
            return hex_bytes(error_data)
        except ValueError:
            return None
    return None
