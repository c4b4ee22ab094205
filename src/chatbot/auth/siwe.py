"""Sign-In with Ethereum (EIP-4361): parse the message, check it, verify who signed it.

The `siwe` package is not used: it pulls in web3, pins eth-account below 0.14 and breaks with
new `abnf` releases, while the message format is a dozen fixed lines that parse plainly here.
An externally owned account proves itself by an EIP-191 signature; a contract account (a Safe,
a smart wallet) by answering EIP-1271 `isValidSignature` on the message's chain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx2
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from eth_utils.exceptions import ValidationError

EIP1271_MAGIC_VALUE = bytes.fromhex("1626ba7e")
IS_VALID_SIGNATURE = keccak(text="isValidSignature(bytes32,bytes)")[:4]
# Contract wallets' signatures vary in length (several owners, passkeys); this only bounds
# what a stranger can make us forward to a node.
MAX_SIGNATURE_BYTES = 16 * 1024

_HEADER = " wants you to sign in with your Ethereum account:"
_HEADER_LINE = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.\-]*)://)?([^\s/?#]+)" + re.escape(_HEADER))
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_CHAIN_ID = re.compile(r"0|[1-9][0-9]*")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+\-][0-9]{2}:[0-9]{2})"
)
_SIGNATURE = re.compile(r"0x(?:[0-9a-fA-F]{2})+")


class SiweError(Exception):
    """A sign-in that must be refused; `code` names why (the API answers 401 with it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SiweMessage:
    """The fields of an EIP-4361 message, as signed."""

    domain: str
    address: str
    statement: str | None
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime | None
    not_before: datetime | None
    request_id: str | None
    resources: tuple[str, ...]
    scheme: str | None = None


def _invalid(reason: str) -> SiweError:
    return SiweError("siwe_invalid_message", f"the sign-in message is malformed: {reason}")


def _address(text: str) -> str:
    if not _ADDRESS.fullmatch(text):
        raise _invalid("the address is not 0x and 40 hex digits")
    checksummed = str(to_checksum_address(text))
    digits = text[2:]
    # All one case carries no checksum; mixed case must be exactly EIP-55's.
    if digits not in (digits.lower(), digits.upper()) and text != checksummed:
        raise _invalid("the address's EIP-55 checksum is wrong")
    return checksummed


def _uri(text: str, field: str) -> str:
    scheme, colon, _ = text.partition(":")
    if not colon or not _URI_SCHEME.fullmatch(scheme) or any(c.isspace() for c in text):
        raise _invalid(f"{field} is not an absolute URI")
    return text


def _time(text: str, field: str) -> datetime:
    if not _RFC3339.fullmatch(text):
        raise _invalid(f"{field} is not an RFC 3339 date-time")
    try:
        return datetime.fromisoformat(text.upper()).astimezone(UTC)
    except ValueError:
        raise _invalid(f"{field} is not a valid date-time") from None


def _format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("sign-in message times must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_message(text: str) -> SiweMessage:
    """Parse an EIP-4361 message exactly (line by line, in the spec's order); SiweError if not."""
    lines = text.split("\n")
    position = 0

    def take(prefix: str, field: str, *, optional: bool = False) -> str | None:
        nonlocal position
        if position < len(lines) and lines[position].startswith(prefix):
            position += 1
            return lines[position - 1][len(prefix) :]
        if optional:
            return None
        raise _invalid(f"the {field} line is missing or out of order")

    header = _HEADER_LINE.fullmatch(lines[0])
    if header is None:
        raise _invalid(f"the first line must be '<domain>{_HEADER}'")
    if len(lines) < 5 or lines[2] != "":
        raise _invalid("the address line and a blank line must follow the first line")
    address = _address(lines[1])
    # With a statement: blank, statement, blank. Without: two blank lines (the ABNF's form).
    statement: str | None = None
    if lines[3] == "":
        position = 4
    elif len(lines) > 4 and lines[4] == "":
        statement, position = lines[3], 5
    else:
        raise _invalid("the statement must be one line between blank lines")

    uri = _uri(take("URI: ", "URI") or "", "the URI")
    version = take("Version: ", "Version")
    if version != "1":
        raise _invalid("only version 1 exists")
    chain_id = take("Chain ID: ", "Chain ID") or ""
    if not _CHAIN_ID.fullmatch(chain_id):
        raise _invalid("the chain id is not a decimal number")
    nonce = take("Nonce: ", "Nonce") or ""
    if not _NONCE.fullmatch(nonce):
        raise _invalid("the nonce must be at least 8 letters or digits")
    issued_at = _time(take("Issued At: ", "Issued At") or "", "Issued At")
    expiration = take("Expiration Time: ", "Expiration Time", optional=True)
    not_before = take("Not Before: ", "Not Before", optional=True)
    request_id = take("Request ID: ", "Request ID", optional=True)
    resources: list[str] = []
    if take("Resources:", "Resources", optional=True) is not None:
        if lines[position - 1] != "Resources:":
            raise _invalid("the Resources line has text after the colon")
        while (resource := take("- ", "resource", optional=True)) is not None:
            resources.append(_uri(resource, "a resource"))
    if position != len(lines):
        raise _invalid(f"unexpected text on line {position + 1}")
    return SiweMessage(
        domain=header.group(2),
        address=address,
        statement=statement,
        uri=uri,
        version=version,
        chain_id=int(chain_id),
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=_time(expiration, "Expiration Time") if expiration is not None else None,
        not_before=_time(not_before, "Not Before") if not_before is not None else None,
        request_id=request_id,
        resources=tuple(resources),
        scheme=header.group(1),
    )


def build_message(
    *,
    domain: str,
    address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: datetime,
    statement: str | None = None,
    expiration_time: datetime | None = None,
    not_before: datetime | None = None,
    request_id: str | None = None,
    resources: tuple[str, ...] | list[str] = (),
    scheme: str | None = None,
) -> str:
    """The EIP-4361 text for these fields, so clients and tests sign what `parse_message` reads."""
    origin = f"{scheme}://{domain}" if scheme else domain
    lines = [f"{origin}{_HEADER}", address, ""]
    lines += [statement, ""] if statement is not None else [""]
    lines += [
        f"URI: {uri}",
        "Version: 1",
        f"Chain ID: {chain_id}",
        f"Nonce: {nonce}",
        f"Issued At: {_format_time(issued_at)}",
    ]
    if expiration_time is not None:
        lines.append(f"Expiration Time: {_format_time(expiration_time)}")
    if not_before is not None:
        lines.append(f"Not Before: {_format_time(not_before)}")
    if request_id is not None:
        lines.append(f"Request ID: {request_id}")
    if resources:
        lines += ["Resources:", *(f"- {resource}" for resource in resources)]
    return "\n".join(lines)


async def verify(
    text: str,
    signature: str,
    *,
    domain: str,
    rpc_urls: Mapping[int, str],
    http: httpx2.AsyncClient,
    now: datetime | None = None,
    clock_skew: timedelta = timedelta(seconds=60),
) -> SiweMessage:
    """Check everything but the nonce (the caller consumes it once) and return the message."""
    message = parse_message(text)
    if not _SIGNATURE.fullmatch(signature) or len(signature) // 2 - 1 > MAX_SIGNATURE_BYTES:
        raise _invalid("the signature is not 0x-prefixed hex of a sensible length")
    if message.domain != domain:
        raise SiweError("siwe_domain", f"the message is for {message.domain!r}, not {domain!r}")
    if urlsplit(message.uri).netloc != domain:
        raise SiweError("siwe_uri", f"the message's URI {message.uri!r} is not on {domain!r}")
    if message.chain_id not in rpc_urls:
        raise SiweError("siwe_chain", f"chain id {message.chain_id} is not a configured network")

    now = now or datetime.now(UTC)
    if message.expiration_time is not None and message.expiration_time <= now:
        raise SiweError("siwe_expired", "the sign-in message has expired")
    if message.not_before is not None and message.not_before > now + clock_skew:
        raise SiweError("siwe_not_yet_valid", "the sign-in message is not valid yet (Not Before)")
    if message.issued_at > now + clock_skew:
        raise SiweError("siwe_not_yet_valid", "the sign-in message is issued in the future")

    signable = encode_defunct(text=text)
    raw = bytes.fromhex(signature[2:])
    if len(raw) == 65 and _recover(signable, raw) == message.address:
        return message
    rpc_url = rpc_urls[message.chain_id]
    if await _contract_accepts(http, rpc_url, message, _eip191_hash(signable), raw):
        return message
    raise SiweError("siwe_signature", f"the signature is not {message.address}'s")


def _recover(signable: SignableMessage, signature: bytes) -> str | None:
    try:
        return str(Account.recover_message(signable, signature=signature))
    except (ValueError, BadSignature, ValidationError):
        # Not a well-formed ECDSA signature; a contract wallet may still accept it.
        return None


def _eip191_hash(signable: SignableMessage) -> bytes:
    # eth-account 0.14 keeps this hash private (`_hash_eip191_message`); it is EIP-191's rule.
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


async def _contract_accepts(
    http: httpx2.AsyncClient, rpc_url: str, message: SiweMessage, digest: bytes, signature: bytes
) -> bool:
    """Whether the address is a contract whose EIP-1271 `isValidSignature` accepts this."""
    chain_id = message.chain_id
    code = await _rpc(http, rpc_url, chain_id, "eth_getCode", message.address, "latest")
    if not isinstance(code, str) or code in ("0x", "0x0", ""):
        return False
    data = IS_VALID_SIGNATURE + encode(["bytes32", "bytes"], [digest, signature])
    call = {"to": message.address, "data": "0x" + data.hex()}
    try:
        answer = await _rpc(http, rpc_url, chain_id, "eth_call", call, "latest")
    except _Reverted:
        return False
    try:
        returned = bytes.fromhex(answer[2:]) if isinstance(answer, str) else b""
    except ValueError:
        return False
    return len(returned) >= 32 and returned[:4] == EIP1271_MAGIC_VALUE


class _Reverted(Exception):
    """The node ran the call and it reverted: the contract does not accept the signature."""


async def _rpc(
    http: httpx2.AsyncClient, rpc_url: str, chain_id: int, method: str, *params: Any
) -> Any:
    # The URL may hold an API key: messages name the chain id only.
    unverifiable = SiweError(
        "siwe_unverifiable",
        f"the network with chain id {chain_id} could not be reached to check a contract "
        "wallet's signature; try again later",
    )
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    try:
        response = await http.post(rpc_url, json=body)
        answer = response.json() if response.status_code == 200 else None
    except (httpx2.HTTPError, ValueError):
        raise unverifiable from None
    if not isinstance(answer, dict):
        raise unverifiable
    failure = answer.get("error")
    if failure is None:
        return answer.get("result")
    text = str(failure.get("message", "")) if isinstance(failure, dict) else ""
    code = failure.get("code") if isinstance(failure, dict) else None
    # geth answers a revert with code 3; Hardhat and others say so in the message.
    if code == 3 or "revert" in text.lower():
        raise _Reverted
    raise unverifiable
