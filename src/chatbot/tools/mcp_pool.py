"""One pool of MCP connections per process, shared by every session.

Servers come from a JSON file in the common `{"mcpServers": {...}}` format (stdio
`command`/`args`/`env`, or streamable HTTP `url`). Each is connected once at start-up
through pydantic-ai's `MCPToolset`; when one dies, its tools answer with a clear tool
error while a background task reconnects it with exponential backoff.

The model never chooses the network: tools that take a `network` argument have it
removed from the schema the model sees, and the app fills in the session's own. An
argument marked `x-user-address` that the model leaves out gets the user's wallet address.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastmcp.client.transports import StdioTransport
from mcp.shared.exceptions import MCPError
from mcp_types import METHOD_NOT_FOUND
from pydantic import BaseModel, Field, ValidationError
from pydantic_ai.exceptions import ModelRetry, ToolFailed
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from chatbot.agent.deps import TurnDeps

log = logging.getLogger("chatbot.mcp")

NETWORK_ARG = "network"
USER_ADDRESS_MARK = "x-user-address"
"""On a tool argument's schema: left out, it means the user's own wallet address."""
PING_TIMEOUT = 2.0


class ServerConfig(BaseModel):
    """One `mcpServers` entry: a command to spawn (stdio) or a URL (streamable HTTP)."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None


class McpConfig(BaseModel):
    """The whole file."""

    mcpServers: dict[str, ServerConfig] = Field(default_factory=dict)


def load_config(path: Path) -> dict[str, ServerConfig]:
    """Read and check the MCP config; a missing file means no servers."""
    if not path.is_file():
        return {}
    try:
        servers = McpConfig.model_validate_json(path.read_bytes()).mcpServers
    except ValidationError as error:
        raise ValueError(f"{path} is not a valid MCP config: {error}") from error
    for name, server in servers.items():
        if (server.command is None) == (server.url is None):
            raise ValueError(f"MCP server {name!r} in {path} needs either `command` or `url`")
    return servers


def _connect(name: str, server: ServerConfig, env: dict[str, str]) -> MCPToolset[TurnDeps]:
    if server.command is not None:
        # "python" means this server's own interpreter, so `mcp.json` works in any venv.
        command = sys.executable if server.command in ("python", "python3") else server.command
        transport = StdioTransport(
            command=command, args=server.args, env={**env, **(server.env or {})}, cwd=server.cwd
        )
        return MCPToolset(transport, id=name, tool_error_behavior="failed")
    assert server.url is not None
    return MCPToolset(server.url, id=name, headers=server.headers, tool_error_behavior="failed")


@dataclass
class PooledServer(WrapperToolset[TurnDeps]):
    """One MCP server as the agent sees it: session network filled in, outages survived.

    A supervisor task owns the connection: the MCP client's cancel scopes must be
    entered and exited by one task, so that task connects, waits until the connection
    is lost (or the pool closes), disconnects, backs off and connects again.
    """

    name: str = ""
    config: ServerConfig | None = None
    env: dict[str, str] = field(default_factory=dict)
    prefix: bool = False
    connected: bool = False
    tool_names: frozenset[str] = frozenset()
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    _cache: dict[str, ToolsetTool[TurnDeps]] | None = None
    _connection: MCPToolset[TurnDeps] | None = None
    _supervisor: asyncio.Task[None] | None = None
    _lost: asyncio.Event = field(default_factory=asyncio.Event)
    _attempted: asyncio.Event = field(default_factory=asyncio.Event)
    _closing: bool = False

    @property
    def id(self) -> str | None:
        """Stable across reconnects."""
        return f"mcp:{self.name}"

    async def __aenter__(self) -> PooledServer:
        return self  # connections belong to the supervisor, not to each agent run

    async def __aexit__(self, *args: Any) -> bool | None:
        return None

    async def start(self) -> None:
        """Start supervising; returns once the first connection attempt has ended."""
        self._supervisor = asyncio.create_task(self._supervise(), name=f"mcp-{self.name}")
        await self._attempted.wait()

    async def close(self) -> None:
        """Disconnect for good (a stdio server process goes with the connection)."""
        self._closing = True
        self._lost.set()  # a connected supervisor disconnects and returns
        if self._supervisor is not None:
            if not self.connected:
                self._supervisor.cancel()  # it is backing off or still connecting
            await asyncio.gather(self._supervisor, return_exceptions=True)

    def lost(self, error: BaseException) -> None:
        """The connection broke: mark the server down; the supervisor reconnects."""
        if self.connected:
            log.warning(
                "mcp server lost", extra={"server": self.name, "error": type(error).__name__}
            )
        self.connected = False
        self._lost.set()

    async def _supervise(self) -> None:
        assert self.config is not None
        delay = self.backoff_initial
        while not self._closing:
            toolset = _connect(self.name, self.config, self.env)
            try:
                async with toolset:
                    self.tool_names = frozenset(tool.name for tool in await toolset.list_tools())
                    self.wrapped = toolset.prefixed(self.name) if self.prefix else toolset
                    self._connection = toolset
                    self._cache = None
                    self.connected = True
                    self._attempted.set()
                    delay = self.backoff_initial
                    log.info(
                        "mcp server connected",
                        extra={"server": self.name, "tools": len(self.tool_names)},
                    )
                    await self._lost.wait()
            except Exception as error:
                log.warning(
                    "mcp server unavailable",
                    extra={"server": self.name, "error": type(error).__name__, "retry_in": delay},
                )
            self.connected = False
            self._attempted.set()
            if self._closing:
                return
            await asyncio.sleep(delay)  # backoff before reconnecting, not a poll
            delay = min(delay * 2, self.backoff_max)
            self._lost.clear()

    async def get_tools(self, ctx: RunContext[TurnDeps]) -> dict[str, ToolsetTool[TurnDeps]]:
        """The server's tools without `network`; while it is down, the last known ones."""
        if self.connected:
            try:
                tools = await self.wrapped.get_tools(ctx)
            except Exception as error:
                self.lost(error)
            else:
                self._cache = {name: _adapt(tool) for name, tool in tools.items()}
        return dict(self._cache or {})

    async def call_tool(
        self,
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[TurnDeps],
        tool: ToolsetTool[TurnDeps],
    ) -> Any:
        """Call the tool on the session's network; a lost server is a tool error, not a crash."""
        if not self.connected:
            raise ToolFailed(
                f"The {self.name!r} tool server is unavailable right now; it is reconnecting."
            )
        tool_args = _fill_in(tool, tool_args, ctx.deps)
        try:
            return await self.wrapped.call_tool(name, tool_args, ctx, tool)
        except (ToolFailed, ModelRetry) as error:
            # The MCP toolset reports a dead connection as a tool failure too: ask the
            # server whether it is still there before blaming the tool.
            if await self._alive():
                raise
            self.lost(error)
            raise self._unavailable(error) from error
        except Exception as error:
            self.lost(error)
            raise self._unavailable(error) from error

    async def _alive(self) -> bool:
        connection = self._connection
        if connection is None:
            return False
        try:
            await asyncio.wait_for(connection.client.ping(), PING_TIMEOUT)
        except MCPError as error:
            # It answered, if only that it has no `ping` (the SDK's own MCPServer has none).
            return error.code == METHOD_NOT_FOUND
        except Exception:
            return False
        return True

    def _unavailable(self, error: BaseException) -> ToolFailed:
        return ToolFailed(
            f"The {self.name!r} tool server stopped answering ({type(error).__name__}); "
            "it is reconnecting. Try again shortly."
        )


def _adapt(tool: ToolsetTool[TurnDeps]) -> ToolsetTool[TurnDeps]:
    """Remove `network` from what the model sees, and note what the app fills in: the
    network, and arguments marked `x-user-address` that the model leaves out."""
    schema = tool.tool_def.parameters_json_schema
    properties: dict[str, Any] = schema.get("properties", {})
    own = [
        name
        for name, spec in properties.items()
        if isinstance(spec, dict) and spec.get(USER_ADDRESS_MARK)
    ]
    if NETWORK_ARG not in properties and not own:
        return tool
    visible = {
        **schema,
        "properties": {k: v for k, v in properties.items() if k != NETWORK_ARG},
        "required": [r for r in schema.get("required", []) if r != NETWORK_ARG],
    }
    definition: ToolDefinition = replace(
        tool.tool_def,
        parameters_json_schema=visible,
        metadata={
            **(tool.tool_def.metadata or {}),
            NETWORK_ARG: NETWORK_ARG in properties,
            USER_ADDRESS_MARK: own,
        },
    )
    return replace(tool, tool_def=definition)


def _fill_in(tool: ToolsetTool[TurnDeps], args: dict[str, Any], deps: TurnDeps) -> dict[str, Any]:
    """The call's arguments with the session's network and the user's own address added."""
    metadata = tool.tool_def.metadata or {}
    filled = dict(args)
    if metadata.get(NETWORK_ARG):
        filled[NETWORK_ARG] = deps.network
    account = deps.session.account
    for name in metadata.get(USER_ADDRESS_MARK, ()):
        if filled.get(name) is None and account is not None:
            filled[name] = account.address
    return filled


class McpPool:
    """Every configured MCP server, connected once per process."""

    def __init__(self, servers: dict[str, ServerConfig], env: dict[str, str]) -> None:
        """`env` is added to every stdio server's environment (e.g. NETWORKS)."""
        self.servers = [
            PooledServer(wrapped=_placeholder(), name=name, config=config, env=env)
            for name, config in servers.items()
        ]
        self.started = asyncio.Event()
        """Set once every server's first connection attempt has ended."""

    @property
    def toolsets(self) -> list[AbstractToolset[TurnDeps]]:
        """What the agent is given."""
        return list(self.servers)

    async def start(self) -> None:
        """Connect every server; one that fails keeps retrying in the background."""
        try:
            await asyncio.gather(*(server.start() for server in self.servers))
            self._prefix_collisions()
        finally:
            self.started.set()
        connected = sum(server.connected for server in self.servers)
        log.info("mcp pool ready", extra={"servers": len(self.servers), "connected": connected})

    def _prefix_collisions(self) -> None:
        seen: dict[str, int] = {}
        for server in self.servers:
            for tool in server.tool_names:
                seen[tool] = seen.get(tool, 0) + 1
        for server in self.servers:
            if any(seen[tool] > 1 for tool in server.tool_names):
                server.prefix = True
                if isinstance(server.wrapped, MCPToolset):
                    server.wrapped = server.wrapped.prefixed(server.name)

    def missing(self) -> list[str]:
        """The servers not connected now."""
        return [server.name for server in self.servers if not server.connected]

    async def stop(self) -> None:
        """Close every connection."""
        await asyncio.gather(*(server.close() for server in self.servers))


def _placeholder() -> AbstractToolset[TurnDeps]:
    """What a server wraps before its first connection: no tools."""
    return FunctionToolset()
