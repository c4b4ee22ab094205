"""The interface between the agent runtime and whatever runs tools."""

from __future__ import annotations

from typing import Any, Protocol


class ToolError(Exception):
    """A tool call failed; the message is shown in the tool card and given to the model."""


class Toolbox(Protocol):
    """Runs a named tool with the session's network as context."""

    async def call(self, name: str, args: dict[str, Any], *, network: str) -> Any:
        """Run the tool and return its JSON-able result, or raise `ToolError`."""
        ...


class NoTools:
    """The toolbox of a server with no tool servers configured."""

    async def call(self, name: str, args: dict[str, Any], *, network: str) -> Any:
        """Every call fails: no tool of that name exists here."""
        raise ToolError(f"Unknown tool: {name}")
