"""Talking to MCP servers in tests: a stdio client of the built-in EVM server and the
assertions on tool results.

`stdio_server(networks, *options)` spawns `python -m chatbot.tools.evm` and yields a
client session; `ok` and `tool_error` call a tool and fail the test on the other outcome;
`in_own_task` lets a module-scoped fixture hold a session (see its docstring).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from eth_utils.address import to_checksum_address
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent

T = TypeVar("T")


def fresh_address() -> str:
    """A random address no other test has used: its balances are zero, nothing of it cached."""
    return str(to_checksum_address("0x" + secrets.token_hex(20)))


@asynccontextmanager
async def stdio_server(
    networks: str,
    *options: str,
    env: Mapping[str, str] | None = None,
    errlog: Path | None = None,
) -> AsyncIterator[Client]:
    """A client of `python -m chatbot.tools.evm *options` over stdio with these NETWORKS
    and `env`; the server's stderr goes to the file `errlog` when one is given."""
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "chatbot.tools.evm", *options],
        env={"NETWORKS": networks, **(env or {})},
    )
    with ExitStack() as files:
        server = (
            parameters
            if errlog is None
            else stdio_client(parameters, errlog=files.enter_context(errlog.open("w")))
        )
        async with Client(server, read_timeout_seconds=20) as client:
            yield client


async def ok(client: Client, tool: str, **arguments: Any) -> Any:
    """A tool's structured result, failing the test on a tool error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def tool_error(client: Client, tool: str, **arguments: Any) -> str:
    """The message of a tool error, failing the test if the call succeeded."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return text_of(result)


def text_of(result: CallToolResult) -> str:
    """A tool result's text blocks, joined by spaces."""
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


@asynccontextmanager
async def in_own_task(manager: AbstractAsyncContextManager[T]) -> AsyncIterator[T]:
    """Enter and exit `manager` in one task of its own.

    The MCP client's anyio cancel scopes must be exited by the task that entered them;
    a module-scoped fixture's teardown runs in another task than its setup.
    """
    entered: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def hold() -> None:
        try:
            async with manager as value:
                entered.set_result(value)
                await release.wait()
        except BaseException as error:
            if not entered.done():
                entered.set_exception(error)
            raise

    holder = asyncio.create_task(hold())
    try:
        yield await entered
    finally:
        release.set()
        await holder
