"""Session commands of `POST /api/mcp-command`, checked before any session is touched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatbot.config import Settings
from chatbot.errors import InvalidInput, UnknownCommand, UnknownNetwork
from chatbot.sessions.session import Session


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The original `{success, message, data}` answer."""

    success: bool
    message: str
    data: Any = None


Command = Callable[[Session], CommandResult]


def parse_command(command: str, args: dict[str, Any] | str | None, settings: Settings) -> Command:
    """Validate a command fully, returning what applies it; bad input raises first."""
    if command == "set_network":
        name = args.get("network") if isinstance(args, dict) else args
        if not isinstance(name, str) or not name:
            raise InvalidInput('set_network needs args {"network": NAME}.')
        if name not in settings.networks:
            known = ", ".join(settings.networks)
            raise UnknownNetwork(f"Unknown network {name[:64]!r}; known networks: {known}.")
        return lambda session: _set_network(session, name, settings)
    if command == "get_network":
        return lambda session: CommandResult(
            True, f"On {session.network}.", _network_info(session.network, settings)
        )
    if command == "list_networks":
        networks = [_network_info(name, settings) for name in settings.networks]
        return lambda session: CommandResult(True, f"{len(networks)} networks.", networks)
    raise UnknownCommand(
        f"Unknown command {command[:64]!r}; known: set_network, get_network, list_networks."
    )


def _set_network(session: Session, name: str, settings: Settings) -> CommandResult:
    session.set_network(name)
    return CommandResult(True, f"Switched to {name}.", _network_info(name, settings))


def _network_info(name: str, settings: Settings) -> dict[str, Any]:
    network = settings.networks[name]
    return {
        "network": name,
        "chain_id": network.chain_id,
        "currency": network.currency,
        "explorer_url": network.explorer_url,
    }
