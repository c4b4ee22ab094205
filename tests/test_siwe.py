"""Sign-In with Ethereum: message parsing, every refusal's code, EOA and EIP-1271 signatures.

One Hardhat node serves the contract-wallet tests; the rest need no chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from chatbot.auth.siwe import SiweError, SiweMessage, build_message, parse_message, verify
from tests.chain import Chain, run_chain
from tests.server import free_port

CHAIN_ID = 31341
DOMAIN = "127.0.0.1:8080"
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
# Fixed keys, so failures reproduce.
KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32
ADDRESS = Account.from_key(KEY).address
NONCE = "abcDEF123456"


def message_text(**changes: Any) -> str:
    fields: dict[str, Any] = {
        "domain": DOMAIN,
        "address": ADDRESS,
        "uri": f"http://{DOMAIN}/login",
        "chain_id": CHAIN_ID,
        "nonce": NONCE,
        "issued_at": NOW - timedelta(seconds=5),
        "statement": "Sign in to the chat.",
    }
    return build_message(**(fields | changes))


def sign(text: str, key: str = KEY) -> str:
    signed = Account.sign_message(encode_defunct(text=text), key)
    return "0x" + bytes(signed.signature).hex()


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=5.0) as client:
        yield client


async def check(
    text: str,
    signature: str,
    http: httpx2.AsyncClient,
    rpc_urls: dict[int, str] | None = None,
    now: datetime = NOW,
) -> SiweMessage:
    urls = rpc_urls if rpc_urls is not None else {CHAIN_ID: f"http://127.0.0.1:{free_port()}"}
    return await verify(text, signature, domain=DOMAIN, rpc_urls=urls, http=http, now=now)


async def refused(text: str, signature: str, http: httpx2.AsyncClient, **kwargs: Any) -> str:
    with pytest.raises(SiweError) as caught:
        await check(text, signature, http, **kwargs)
    return caught.value.code


async def test_a_valid_eoa_sign_in_returns_the_message(http: httpx2.AsyncClient) -> None:
    text = message_text(address=ADDRESS.lower())
    message = await check(text, sign(text), http)
    assert message.address == ADDRESS
    assert message.chain_id == CHAIN_ID
    assert message.nonce == NONCE
    assert message.statement == "Sign in to the chat."


def test_build_and_parse_round_trip_with_every_field() -> None:
    text = build_message(
        domain=DOMAIN,
        address=ADDRESS,
        uri=f"http://{DOMAIN}/",
        chain_id=1,
        nonce=NONCE,
        issued_at=NOW,
        statement="I accept the terms.",
        expiration_time=NOW + timedelta(minutes=10),
        not_before=NOW - timedelta(minutes=1, microseconds=250),
        request_id="req-42",
        resources=("ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/", "x:y"),
        scheme="http",
    )
    message = parse_message(text)
    assert message == SiweMessage(
        domain=DOMAIN,
        address=ADDRESS,
        statement="I accept the terms.",
        uri=f"http://{DOMAIN}/",
        version="1",
        chain_id=1,
        nonce=NONCE,
        issued_at=NOW,
        expiration_time=NOW + timedelta(minutes=10),
        not_before=NOW - timedelta(minutes=1, microseconds=250),
        request_id="req-42",
        resources=("ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/", "x:y"),
        scheme="http",
    )
    assert build_message(**{f: getattr(message, f) for f in _build_fields()}) == text


def _build_fields() -> list[str]:
    return [f for f in SiweMessage.__slots__ if f != "version"]


def test_the_spec_example_without_statement_parses() -> None:
    text = (
        "example.com wants you to sign in with your Ethereum account:\n"
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
        "\n"
        "\n"
        "URI: https://example.com/login\n"
        "Version: 1\n"
        "Chain ID: 1\n"
        "Nonce: 32891756\n"
        "Issued At: 2021-09-30T16:25:24Z"
    )
    message = parse_message(text)
    assert message.statement is None
    assert message.issued_at == datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)
    assert (message.expiration_time, message.not_before, message.request_id) == (None,) * 3
    assert message.resources == ()
    assert build_message(**{f: getattr(message, f) for f in _build_fields()}) == text


def _broken_checksum(address: str) -> str:
    """The address with one letter's case flipped: mixed case, but not EIP-55's."""
    at = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:at] + address[at].swapcase() + address[at + 1 :]


def _malformed() -> dict[str, str]:
    good = message_text()
    lines = good.split("\n")
    return {
        "missing line": "\n".join(line for line in lines if not line.startswith("Chain ID")),
        "bad version": good.replace("Version: 1", "Version: 2"),
        "short nonce": good.replace(NONCE, "abc123"),
        "nonce not alphanumeric": good.replace(NONCE, "abcdef12-3456"),
        "bad checksum": good.replace(ADDRESS, _broken_checksum(ADDRESS)),
        "bad timestamp": good.replace("Issued At: 2025-06-01T11:59:55Z", "Issued At: yesterday"),
        "relative URI": good.replace(f"URI: http://{DOMAIN}/login", "URI: /login"),
        "lines out of order": good.replace("Version: 1\nChain ID", "Chain ID").replace(
            f"Nonce: {NONCE}", f"Nonce: {NONCE}\nVersion: 1"
        ),
        "trailing newline": good + "\n",
        "garbage": "hello, please let me in",
        "empty": "",
    }


@pytest.mark.parametrize("case", list(_malformed()))
async def test_a_malformed_message_is_refused(case: str, http: httpx2.AsyncClient) -> None:
    text = _malformed()[case]
    assert text != message_text()
    with pytest.raises(SiweError) as caught:
        parse_message(text)
    assert caught.value.code == "siwe_invalid_message"
    assert await refused(text, sign(text), http) == "siwe_invalid_message"


@pytest.mark.parametrize("signature", ["", "0x", "zz", "0x12345", "0xnothex", "12" * 65])
async def test_a_malformed_signature_is_refused(signature: str, http: httpx2.AsyncClient) -> None:
    assert await refused(message_text(), signature, http) == "siwe_invalid_message"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"domain": "evil.example"}, "siwe_domain"),
        ({"uri": "https://evil.example/login"}, "siwe_uri"),
        ({"chain_id": 1}, "siwe_chain"),
        ({"expiration_time": NOW}, "siwe_expired"),
        ({"expiration_time": NOW - timedelta(hours=1)}, "siwe_expired"),
        ({"not_before": NOW + timedelta(minutes=5)}, "siwe_not_yet_valid"),
        ({"issued_at": NOW + timedelta(minutes=5)}, "siwe_not_yet_valid"),
    ],
)
async def test_a_message_for_another_place_or_time_is_refused(
    changes: dict[str, Any], code: str, http: httpx2.AsyncClient
) -> None:
    text = message_text(**changes)
    assert await refused(text, sign(text), http) == code


async def test_clock_skew_is_tolerated(http: httpx2.AsyncClient) -> None:
    text = message_text(
        issued_at=NOW + timedelta(seconds=30), not_before=NOW + timedelta(seconds=30)
    )
    assert (await check(text, sign(text), http)).address == ADDRESS


async def test_a_tampered_message_is_refused(chain: Chain, http: httpx2.AsyncClient) -> None:
    text = message_text()
    signature = sign(text)
    tampered = text.replace("Sign in to the chat.", "Sign in to the chaT.")
    assert await refused(tampered, signature, http, rpc_urls=urls(chain)) == "siwe_signature"


async def test_another_keys_signature_is_refused(chain: Chain, http: httpx2.AsyncClient) -> None:
    text = message_text()
    assert await refused(text, sign(text, OTHER_KEY), http, rpc_urls=urls(chain)) == (
        "siwe_signature"
    )


def urls(chain: Chain) -> dict[int, str]:
    return {chain.chain_id: chain.rpc_url}


@pytest.fixture(scope="module")
async def chain() -> AsyncIterator[Chain]:
    async with run_chain(CHAIN_ID) as running:
        yield running


@pytest.fixture(scope="module")
async def wallet(chain: Chain) -> str:
    """An EIP-1271 contract wallet owned by KEY's account."""
    return await chain.deploy("Erc1271Wallet", ["address"], [ADDRESS])


async def test_a_contract_wallet_signs_in_with_its_owners_signature(
    chain: Chain, wallet: str, http: httpx2.AsyncClient
) -> None:
    text = message_text(address=wallet)
    message = await check(text, sign(text), http, rpc_urls=urls(chain))
    assert message.address == wallet


async def test_a_contract_wallet_refuses_a_strangers_signature(
    chain: Chain, wallet: str, http: httpx2.AsyncClient
) -> None:
    text = message_text(address=wallet)
    assert await refused(text, sign(text, OTHER_KEY), http, rpc_urls=urls(chain)) == (
        "siwe_signature"
    )
    # A length the wallet rejects, and a contract without isValidSignature (reverts).
    assert await refused(text, "0x" + "ab" * 64, http, rpc_urls=urls(chain)) == "siwe_signature"
    token = await chain.deploy_token()
    token_text = message_text(address=token)
    assert await refused(token_text, sign(token_text), http, rpc_urls=urls(chain)) == (
        "siwe_signature"
    )


async def test_an_unreachable_network_makes_a_signature_unverifiable(
    http: httpx2.AsyncClient,
) -> None:
    text = message_text()
    code = await refused(text, sign(text, OTHER_KEY), http)  # the default URL is a closed port
    assert code == "siwe_unverifiable"
    with pytest.raises(SiweError) as caught:
        await check(text, sign(text, OTHER_KEY), http)
    assert f"chain id {CHAIN_ID}" in caught.value.message
    assert "127.0.0.1" not in caught.value.message


def test_the_build_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        message_text(issued_at=NOW.replace(tzinfo=None))


def test_parse_normalises_an_offset_and_lowercase_markers() -> None:
    text = message_text().replace(
        "Issued At: 2025-06-01T11:59:55Z", "Issued At: 2025-06-01t13:59:55+02:00"
    )
    assert parse_message(text).issued_at == NOW - timedelta(seconds=5)
