"""`python -m chatbot.tools.evm`: serve the EVM tools over stdio (default) or streamable HTTP.

Networks come from the app's settings (the NETWORKS environment variable or `.env`), so
the server and the chat app agree on what each network name means. So do the explorers
that the contract tools ask for ABIs: SOURCIFY_URL, ETHERSCAN_API_URL and, optionally,
ETHERSCAN_API_KEY.
"""

from __future__ import annotations

import argparse
import sys
from typing import Literal

import anyio
import httpx2
from pydantic import ValidationError

from chatbot.config import Settings
from chatbot.tools.evm.contracts import ContractTools, add_contract_tools
from chatbot.tools.evm.explorer import DEFAULT_TIMEOUT_SECONDS as EXPLORER_TIMEOUT_SECONDS
from chatbot.tools.evm.explorer import ContractSources
from chatbot.tools.evm.rpc import DEFAULT_TIMEOUT_SECONDS, RpcClient
from chatbot.tools.evm.server import build_server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; HTTP serves the MCP endpoint at /mcp."""
    parser = argparse.ArgumentParser(
        prog="python -m chatbot.tools.evm",
        description="The built-in Ethereum MCP server (networks from the NETWORKS setting).",
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP only (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP only (default 8765)")
    parser.add_argument(
        "--rpc-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for a node's answer (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--explorer-timeout",
        type=float,
        default=EXPLORER_TIMEOUT_SECONDS,
        help="seconds to wait for Etherscan's or Sourcify's answer "
        f"(default {EXPLORER_TIMEOUT_SECONDS:g})",
    )
    return parser.parse_args(argv)


async def serve(
    settings: Settings,
    transport: Literal["stdio", "http"],
    host: str,
    port: int,
    rpc_timeout: float,
    explorer_timeout: float,
) -> None:
    """Serve until the client hangs up (stdio) or the process is stopped (HTTP).

    One HTTP client serves every explorer lookup, so its connections are reused.
    """
    timeout = httpx2.Timeout(explorer_timeout, connect=min(explorer_timeout, 5.0))
    async with RpcClient(rpc_timeout) as rpc, httpx2.AsyncClient(timeout=timeout) as http:
        server = build_server(settings.networks, rpc)
        sources = ContractSources(
            http,
            sourcify_url=settings.sourcify_url,
            etherscan_api_url=settings.etherscan_api_url,
            etherscan_api_key=settings.etherscan_api_key,
        )
        add_contract_tools(server, ContractTools(settings.networks, sources))
        if transport == "stdio":
            await server.run_stdio_async()
        else:
            await server.run_streamable_http_async(host=host, port=port)


def main(argv: list[str] | None = None) -> None:
    """Read the settings, then serve; a bad NETWORKS setting is reported, not raised."""
    options = parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        sys.exit(f"chatbot.tools.evm: invalid settings:\n{error}")
    anyio.run(
        serve,
        settings,
        options.transport,
        options.host,
        options.port,
        options.rpc_timeout,
        options.explorer_timeout,
    )


if __name__ == "__main__":
    main()
