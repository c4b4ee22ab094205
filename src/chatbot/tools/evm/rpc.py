"""JSON-RPC over HTTP to a network's node, with failures turned into readable errors.

One `RpcClient` (one connection pool) serves every network and every caller of the
process; a call names its endpoint, so nothing here remembers a "current" network.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx2

from chatbot.config import Network

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Endpoint:
    """A named network's node, as a call needs it (and as error messages name it)."""

    name: str
    chain_id: int
    rpc_url: str

    @property
    def label(self) -> str:
        """How messages name the network: its name, chain id and node, without any secret.

        RPC URLs often carry an API key in the path or query; only scheme, host and port show.
        """
        parts = urlsplit(self.rpc_url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
        return f"network {self.name!r} (chain {self.chain_id}, {parts.scheme}://{host}{port})"


def endpoints(networks: Mapping[str, Network]) -> dict[str, Endpoint]:
    """The configured networks as endpoints, by name."""
    return {
        name: Endpoint(name=name, chain_id=network.chain_id, rpc_url=network.rpc_url)
        for name, network in networks.items()
    }


class RpcUnavailableError(Exception):
    """The node could not be asked: down, too slow, or not speaking JSON-RPC."""


class RpcError(Exception):
    """The node answered with a JSON-RPC error object (for example, a reverted call)."""

    def __init__(self, code: int, message: str, data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class RpcClient:
    """Sends JSON-RPC requests; enter it (`async with`) to open and later close its pool."""

    def __init__(self, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.timeout_seconds = timeout_seconds
        self._client: httpx2.AsyncClient | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> RpcClient:
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(self.timeout_seconds, connect=min(self.timeout_seconds, 5.0)),
            headers={"Content-Type": "application/json"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(self, endpoint: Endpoint, method: str, *params: Any) -> Any:
        """The `result` of one JSON-RPC request; `RpcUnavailableError` or `RpcError` otherwise."""
        if self._client is None:
            raise RuntimeError("RpcClient is not open: use `async with RpcClient()`")
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        try:
            response = await self._client.post(endpoint.rpc_url, json=body)
        except httpx2.TimeoutException:
            raise RpcUnavailableError(
                f"{endpoint.label} did not answer {method} within {self.timeout_seconds:g} s"
            ) from None
        except httpx2.ConnectError as error:
            raise RpcUnavailableError(
                f"{endpoint.label} is unreachable: cannot connect to its RPC node ({error})"
            ) from None
        except httpx2.HTTPError as error:
            raise RpcUnavailableError(
                f"{endpoint.label}: the request to its RPC node failed ({error})"
            ) from None
        if response.status_code != 200:
            raise RpcUnavailableError(
                f"{endpoint.label}: its RPC node answered HTTP {response.status_code} to {method}"
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("id") != request_id:
            raise RpcUnavailableError(
                f"{endpoint.label}: its RPC node did not answer {method} with JSON-RPC"
            )
        failure = answer.get("error")
        if isinstance(failure, dict):
            raise RpcError(
                code=int(failure.get("code", 0)),
                message=str(failure.get("message", "unknown error")),
                data=failure.get("data"),
            )
        return answer.get("result")
