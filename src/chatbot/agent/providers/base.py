"""The interface every model provider implements: one streamed model step at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chatbot.sessions.messages import Message


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text, as soon as the model produced it."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """The model asks for a tool call; the runtime runs it and steps the model again."""

    call_id: str
    name: str
    args: dict[str, Any]


ProviderEvent = TextDelta | ToolCallRequest


class ProviderError(Exception):
    """The model could not answer; the message is safe to show to the user."""


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What one model step sees: the conversation so far and the session's context."""

    history: Sequence[Message]
    network: str


class Provider(Protocol):
    """A model that streams one step: text deltas and/or tool calls, then ends."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        """Stream the next step; raise `ProviderError` when the model fails."""
        ...
