"""A fake Sourcify and a fake Etherscan on one real HTTP server on 127.0.0.1.

Why a socket and not a mock: the EVM MCP server under test is a subprocess that reaches
the explorers through SOURCIFY_URL / ETHERSCAN_API_URL, so only real HTTP exercises its
client, its query strings (the API key among them) and its handling of closed ports.

How a test drives it:

    async with FakeExplorers.start(api_key="test-key") as fake:
        fake.sourcify[token] = Verified(ERC20_ABI)
        fake.etherscan[other] = RateLimited()
        env = fake.env(api_key="test-key")  # for the server process
        ...
        assert fake.requests_for("sourcify", token) == 1

Each service answers per address (any case) with what `sourcify` / `etherscan` hold,
`NotVerified()` when nothing is scripted, in the real APIs' response shapes. Etherscan
answers "Invalid API Key" to any key but `api_key`. Every request is logged, in order,
with its query parameters, so a test can check the cache (no second request) and that
the key went out as `apikey`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from eth_utils.address import to_checksum_address

Service: TypeAlias = Literal["sourcify", "etherscan", "unknown"]
SOURCIFY_PREFIX = "/sourcify/server/v2/contract/"
ETHERSCAN_PATH = "/etherscan/v2/api"
_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Verified:
    """A verified contract: this ABI; Sourcify reports `match` ("match" or "exact_match")."""

    abi: list[dict[str, Any]]
    match: str = "exact_match"


@dataclass(frozen=True)
class NotVerified:
    """No verified source for the address (the default answer)."""


@dataclass(frozen=True)
class RateLimited:
    """Sourcify's HTTP 429, or Etherscan's status-0 answer with this text."""

    message: str = "Max rate limit reached"


@dataclass(frozen=True)
class ServerError:
    """The service failing outright with this HTTP status and a non-JSON page."""

    status: int = 503


Answer: TypeAlias = Verified | NotVerified | RateLimited | ServerError


@dataclass(frozen=True)
class ExplorerRequest:
    """One request the fake received."""

    service: Service
    chain_id: int | None
    address: str | None
    query: dict[str, str]


@dataclass
class FakeExplorers:
    """The server; `sourcify` and `etherscan` map lowercase addresses to their answers."""

    api_key: str | None = None
    sourcify: dict[str, Answer] = field(default_factory=dict)
    etherscan: dict[str, Answer] = field(default_factory=dict)
    requests: list[ExplorerRequest] = field(default_factory=list)
    port: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, api_key: str | None = None) -> AsyncIterator[FakeExplorers]:
        """Serve on an ephemeral port until the block exits."""
        fake = cls(api_key=api_key)
        server = await asyncio.start_server(fake._connection, "127.0.0.1", 0)
        fake.port = server.sockets[0].getsockname()[1]
        try:
            yield fake
        finally:
            server.close()
            # Python 3.11's wait_closed does not end open keep-alive connections: close them.
            for writer in list(fake._writers):
                writer.close()
            await server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sourcify_url(self) -> str:
        """What SOURCIFY_URL is set to (like https://sourcify.dev/server)."""
        return f"{self.url}/sourcify/server"

    @property
    def etherscan_api_url(self) -> str:
        """What ETHERSCAN_API_URL is set to (like https://api.etherscan.io/v2/api)."""
        return f"{self.url}{ETHERSCAN_PATH}"

    def env(self, api_key: str | None = None) -> dict[str, str]:
        """The server process's explorer settings; no key (empty) means Sourcify only."""
        return {
            "SOURCIFY_URL": self.sourcify_url,
            "ETHERSCAN_API_URL": self.etherscan_api_url,
            "ETHERSCAN_API_KEY": api_key or "",
        }

    def requests_for(self, service: Service, address: str) -> int:
        """How many requests `service` received about `address`."""
        wanted = address.lower()
        return sum(
            1
            for request in self.requests
            if request.service == service and (request.address or "").lower() == wanted
        )

    # -- HTTP ------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the requests of one keep-alive connection (GETs only, as the clients send)."""
        self._writers.add(writer)
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = request.decode("latin-1").split("\r\n")
                headers = dict(
                    (name.strip().lower(), value.strip())
                    for name, _, value in (line.partition(":") for line in header_lines if line)
                )
                await reader.readexactly(int(headers.get("content-length", "0")))
                _method, target, _version = request_line.split(" ", 2)
                status, body = self._answer(target)
                kind = "application/json" if body[:1] in (b"{", b"[") else "text/html"
                response = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                    f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                writer.write(response.encode("latin-1") + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed its connection
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, target: str) -> tuple[int, bytes]:
        """Status and body for a request target (path and query)."""
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        if parts.path.startswith(SOURCIFY_PREFIX):
            chain, _, address = parts.path[len(SOURCIFY_PREFIX) :].partition("/")
            self.requests.append(ExplorerRequest("sourcify", int(chain), address, query))
            return _sourcify(self.sourcify.get(address.lower(), NotVerified()), int(chain), address)
        if parts.path == ETHERSCAN_PATH:
            address = query.get("address", "")
            chain_id = int(query["chainid"]) if "chainid" in query else None
            self.requests.append(ExplorerRequest("etherscan", chain_id, address, query))
            if query.get("apikey") != self.api_key:
                return _etherscan_failure("Invalid API Key")
            return _etherscan(self.etherscan.get(address.lower(), NotVerified()))
        self.requests.append(ExplorerRequest("unknown", None, None, query))
        return 404, b"<html>not found</html>"


def _sourcify(answer: Answer, chain_id: int, address: str) -> tuple[int, bytes]:
    """Sourcify v2's GET /v2/contract/{chainId}/{address}?fields=abi."""
    if isinstance(answer, Verified):
        return 200, _json(
            {
                "abi": answer.abi,
                "match": answer.match,
                "creationMatch": answer.match,
                "runtimeMatch": answer.match,
                "chainId": str(chain_id),
                "address": to_checksum_address(address),
                "verifiedAt": "2025-01-01T00:00:00Z",
                "matchId": "1",
            }
        )
    if isinstance(answer, RateLimited):
        return 429, _json({"message": "Too many requests, please try again later."})
    if isinstance(answer, ServerError):
        return answer.status, b"<html>Service Unavailable</html>"
    return 404, _json(
        {
            "customCode": "not_found",
            "message": f"Contract {address} on chain {chain_id} not found or not verified",
            "errorId": str(uuid.uuid4()),
        }
    )


def _etherscan(answer: Answer) -> tuple[int, bytes]:
    """Etherscan v2's getabi: always HTTP 200 but for outages, the verdict in `status`."""
    if isinstance(answer, Verified):
        return 200, _json({"status": "1", "message": "OK", "result": json.dumps(answer.abi)})
    if isinstance(answer, RateLimited):
        return _etherscan_failure(answer.message)
    if isinstance(answer, ServerError):
        return answer.status, b"<html>Service Unavailable</html>"
    return _etherscan_failure("Contract source code not verified")


def _etherscan_failure(result: str) -> tuple[int, bytes]:
    return 200, _json({"status": "0", "message": "NOTOK", "result": result})


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()
