"""The conversation's records, as dataclasses that orjson serializes natively."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from chatbot.model.time import utc_timestamp

Sender = Literal["user", "agent", "system"]


class MessageStatus(StrEnum):
    """Where a message is in its life; `interrupted` and `error` are final, like `complete`."""

    STREAMING = "streaming"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class ToolStatus(StrEnum):
    """Where a tool call is: running until it has a result or an error."""

    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    INTERRUPTED = "interrupted"


def new_message_id() -> str:
    """A short random id, unique within any realistic session."""
    return "m_" + secrets.token_hex(6)  # 48 bits: short on every delta, unique per session


@dataclass(slots=True)
class ToolCallInfo:
    """A tool call as the user sees it: what was asked and what came back."""

    name: str
    args: dict[str, Any]
    status: ToolStatus = ToolStatus.RUNNING
    call_id: str = ""
    result: Any = None
    error: str | None = None

    def interrupt(self) -> None:
        """The call was cut off: interrupted, unless it had already finished."""
        if self.status is ToolStatus.RUNNING:
            self.status = ToolStatus.INTERRUPTED
            self.error = "interrupted"


@dataclass(slots=True, kw_only=True)
class Message:
    """One entry of a conversation; a tool call is an agent message with `tool` set."""

    id: str = field(default_factory=new_message_id)
    sender: Sender
    content: str
    timestamp: str = field(default_factory=utc_timestamp)
    is_streaming: bool = False
    status: MessageStatus = MessageStatus.COMPLETE
    tool: ToolCallInfo | None = None
