"""Verified contract ABIs, from Etherscan (with an API key) or Sourcify (keyless), cached.

Etherscan knows the most verified contracts but needs ETHERSCAN_API_KEY; Sourcify needs
nothing. With a key Etherscan is asked first and Sourcify only when Etherscan has not
verified the contract; without one, Sourcify alone.

The key is a secret. Etherscan wants it in the query string, which httpx2 logs with every
request, so the key is scrubbed from that logger; no message here names more of a
service than its host, and no HTTP error (whose text may hold the URL) is chained.

Answers are cached in memory for the process: explorers rate-limit hard, and a model
tends to ask for the same contract several times in one conversation. A verified ABI is
kept for an hour and "not verified" for five minutes (someone may be verifying it right
now); rate limits and outages are never cached, so the next call tries again.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
from pydantic import SecretStr

from chatbot.tools.evm.values import checksum_address

DEFAULT_TIMEOUT_SECONDS = 10.0
VERIFIED_TTL_SECONDS = 3600.0
NOT_VERIFIED_TTL_SECONDS = 300.0
CACHE_SIZE = 1024

Source = Literal["sourcify", "etherscan"]


@dataclass(frozen=True)
class VerifiedAbi:
    """A verified contract's ABI and where it came from (`match` is Sourcify's verdict)."""

    chain_id: int
    address: str
    source: Source
    match: str | None
    abi: list[dict[str, Any]]


class ExplorerError(Exception):
    """A lookup failed; the message is written for the model and never holds the API key."""


class ContractNotVerifiedError(ExplorerError):
    """No service asked has verified source code for the address: its ABI is unknown."""


class ExplorerRateLimitedError(ExplorerError):
    """A service is throttling this server; the same lookup may work in a while."""


class ExplorerUnavailableError(ExplorerError):
    """A service could not be asked: down, too slow, or answering something unexpected."""


class ExplorerRefusedError(ExplorerError):
    """A service refused the lookup itself: a bad API key, or a chain it does not cover."""


class ContractSources:
    """Looks up verified ABIs through one shared HTTP client, which the caller opens and closes."""

    def __init__(
        self,
        client: httpx2.AsyncClient,
        *,
        sourcify_url: str,
        etherscan_api_url: str,
        etherscan_api_key: SecretStr | None = None,
        cache_size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.sourcify_url = sourcify_url.rstrip("/")
        self.etherscan_api_url = etherscan_api_url
        self._key = None if etherscan_api_key is None else etherscan_api_key.get_secret_value()
        self._cache: OrderedDict[tuple[int, str], tuple[float, VerifiedAbi | None]] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        if self._key:
            _KEY_SCRUBBER.secrets.add(self._key)

    @property
    def services(self) -> str:
        """The services asked, in order, as messages name them."""
        return "Etherscan or Sourcify" if self._key else "Sourcify"

    async def abi(self, chain_id: int, address: str, network: str) -> VerifiedAbi:
        """The verified ABI at `address` on the chain; `network` only names it in errors.

        Raises a subclass of `ExplorerError` saying what failed and what to do about it.
        """
        contract = checksum_address(address, "contract address")
        key = (chain_id, contract)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            found = cached[1]
        else:
            found = await self._lookup(chain_id, contract)
            ttl = VERIFIED_TTL_SECONDS if found is not None else NOT_VERIFIED_TTL_SECONDS
            self._remember(key, (self._clock() + ttl, found))
        if found is None:
            raise ContractNotVerifiedError(
                f"contract {contract} on network {network!r} (chain {chain_id}) is not verified "
                f"on {self.services}, so its ABI is unknown (or the address holds no contract). "
                "Look it up in a block explorer; its owner can verify its source code on "
                "Sourcify or Etherscan."
            )
        return found

    def _remember(self, key: tuple[int, str], entry: tuple[float, VerifiedAbi | None]) -> None:
        """Cache an answer, forgetting the least recently used beyond the size bound."""
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _lookup(self, chain_id: int, address: str) -> VerifiedAbi | None:
        """Etherscan first when there is a key, then Sourcify; None when neither verified it."""
        if self._key:
            found = await self._etherscan(chain_id, address, self._key)
            if found is not None:
                return found
        return await self._sourcify(chain_id, address)

    async def _sourcify(self, chain_id: int, address: str) -> VerifiedAbi | None:
        """Sourcify's v2 API: 200 with the ABI, 404 when not verified, 429 when throttled."""
        url = f"{self.sourcify_url}/v2/contract/{chain_id}/{address}"
        service = _named("Sourcify", url)
        response = await self._get(service, url, {"fields": "abi"})
        if response.status_code == 404:
            return None
        if response.status_code == 429:
            raise _rate_limited(service)
        body = _json(service, response)
        if 400 <= response.status_code < 500:
            message = body.get("message") if isinstance(body, dict) else None
            raise ExplorerRefusedError(
                f"{service} refused the lookup of {address} on chain {chain_id} "
                f"(HTTP {response.status_code}): {message or 'no reason given'}"
            )
        if response.status_code != 200:
            raise _unavailable(service, f"it answered HTTP {response.status_code}")
        entries = body.get("abi") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise _unavailable(service, "its answer holds no ABI")
        match = body.get("match")
        return VerifiedAbi(
            chain_id=chain_id,
            address=address,
            source="sourcify",
            match=match if isinstance(match, str) else None,
            abi=[entry for entry in entries if isinstance(entry, dict)],
        )

    async def _etherscan(self, chain_id: int, address: str, api_key: str) -> VerifiedAbi | None:
        """Etherscan's v2 getabi: HTTP 200 always, `status` "1" with the ABI as a JSON string,
        else "0" with the reason in `result` (not verified, rate limit, bad key...)."""
        service = _named("Etherscan", self.etherscan_api_url)
        params = {
            "chainid": str(chain_id),
            "module": "contract",
            "action": "getabi",
            "address": address,
            "apikey": api_key,
        }
        response = await self._get(service, self.etherscan_api_url, params)
        if response.status_code == 429:
            raise _rate_limited(service)
        if response.status_code != 200:
            raise _unavailable(service, f"it answered HTTP {response.status_code}")
        body = _json(service, response)
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, str):
            raise _unavailable(service, "its answer is not a getabi result")
        ok = body.get("status") == "1"
        entries = _json_list(result) if ok else None
        if entries is not None:
            return VerifiedAbi(
                chain_id=chain_id,
                address=address,
                source="etherscan",
                match=None,
                abi=[entry for entry in entries if isinstance(entry, dict)],
            )
        reason = result.replace(api_key, "***")  # Etherscan's text is not ours to trust
        lowered = reason.lower()
        if "not verified" in lowered:
            return None
        if "rate limit" in lowered:
            raise _rate_limited(service)
        if "api key" in lowered:
            raise ExplorerRefusedError(
                f"{service} refused ETHERSCAN_API_KEY ({reason}): the operator must set a valid "
                "key, or unset it to use Sourcify alone"
            )
        if ok:
            raise _unavailable(service, "the ABI it sent is not a JSON list")
        raise ExplorerRefusedError(
            f"{service} refused the lookup of {address} on chain {chain_id}: {reason}"
        )

    async def _get(self, service: str, url: str, params: dict[str, str]) -> httpx2.Response:
        """One GET; a transport failure becomes `ExplorerUnavailableError` naming the host.

        httpx2's own error text can carry the request URL (and so the key): it is dropped.
        """
        try:
            return await self.client.get(url, params=params)
        except httpx2.TimeoutException:
            raise _unavailable(service, "it did not answer in time") from None
        except httpx2.ConnectError:
            raise _unavailable(service, "it cannot be reached") from None
        except httpx2.HTTPError as error:
            raise _unavailable(service, f"the request failed ({type(error).__name__})") from None


def _named(name: str, url: str) -> str:
    """A service as messages name it: its name and host, never the path or query."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{name} ({parts.hostname or '?'}{port})"


def _json(service: str, response: httpx2.Response) -> Any:
    """The body as JSON; anything else means a proxy or an outage page answered."""
    try:
        return response.json()
    except ValueError:
        raise _unavailable(
            service, f"it answered HTTP {response.status_code} without JSON"
        ) from None


def _json_list(text: str) -> list[Any] | None:
    """A JSON list from text, else None (Etherscan sends the ABI as a string of JSON)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _rate_limited(service: str) -> ExplorerRateLimitedError:
    return ExplorerRateLimitedError(
        f"{service} is rate-limiting this server's lookups: try again in a minute"
    )


def _unavailable(service: str, why: str) -> ExplorerUnavailableError:
    return ExplorerUnavailableError(f"{service} is unavailable: {why}; try again later")


class _KeyScrubber(logging.Filter):
    """Replaces API keys in httpx2's request log lines, which print the full URL."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


_KEY_SCRUBBER = _KeyScrubber()
logging.getLogger("httpx2").addFilter(_KEY_SCRUBBER)
