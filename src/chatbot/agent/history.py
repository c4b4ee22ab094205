"""A session's messages as the model sees them, trimmed to the model's context window."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from chatbot.model import Message

CHARS_PER_TOKEN = 4  # a deliberately cautious estimate across tokenizers


def to_model_messages(messages: Sequence[Message]) -> list[ModelMessage]:
    """Rebuild the model's view: user prompts, system notes, replies and tool round trips."""
    out: list[ModelMessage] = []
    reply: list[ModelResponsePart] = []
    returns: list[ModelRequestPart] = []

    def flush() -> None:
        if reply:
            out.append(ModelResponse(parts=list(reply)))
        if returns:
            out.append(ModelRequest(parts=list(returns)))
        reply.clear()
        returns.clear()

    def request(part: ModelRequestPart) -> None:
        flush()
        last = out[-1] if out else None
        if isinstance(last, ModelRequest) and not _has_tool_returns(last):
            last.parts = [*last.parts, part]  # consecutive notes and prompts: one request
        else:
            out.append(ModelRequest(parts=[part]))

    for message in messages:
        if message.tool is not None:
            tool = message.tool
            reply.append(ToolCallPart(tool.name, tool.args, tool_call_id=tool.call_id))
            content = tool.result if tool.error is None else f"Error: {tool.error}"
            returns.append(ToolReturnPart(tool.name, content, tool_call_id=tool.call_id))
        elif message.sender == "user":
            request(UserPromptPart(message.content))
        elif message.sender == "system":
            request(SystemPromptPart(message.content))
        elif message.content:
            if returns:
                flush()
            reply.append(TextPart(message.content))
    flush()
    if out and all(isinstance(part, SystemPromptPart) for part in out[0].parts):
        # A conversation that opens with a note has no user turn yet; pydantic-ai would
        # fold the note into the system prompt and some APIs refuse an empty conversation.
        # Render it the way pydantic-ai renders notes later in a conversation.
        notes = [p.content for p in out[0].parts if isinstance(p, SystemPromptPart)]
        out[0] = ModelRequest(parts=[UserPromptPart(f"<system>{note}</system>") for note in notes])
    return out


def _has_tool_returns(message: ModelRequest) -> bool:
    return any(isinstance(part, ToolReturnPart) for part in message.parts)


def estimate_tokens(message: ModelMessage) -> int:
    """A rough token count from the serialized size."""
    size = 0
    for part in message.parts:
        content = getattr(part, "content", None) or getattr(part, "args", None)
        size += (
            len(content) if isinstance(content, str) else len(orjson.dumps(content, default=str))
        )
    return size // CHARS_PER_TOKEN + 4


def context_trimmer(budget_tokens: int) -> Callable[[list[ModelMessage]], list[ModelMessage]]:
    """A history processor that keeps the newest messages that fit in `budget_tokens`.

    The cut always lands on a request that starts a user turn, so a tool result is never
    separated from the call it answers; the newest request is always kept.
    """

    def trim(messages: list[ModelMessage]) -> list[ModelMessage]:
        total = 0
        start = len(messages) - 1
        for index in range(len(messages) - 1, -1, -1):
            total += estimate_tokens(messages[index])
            if total > budget_tokens:
                break
            start = index
        turn_starts = [i for i, message in enumerate(messages) if _starts_turn(message)]
        later = [i for i in turn_starts if i >= start]
        # The newest turn alone may be over budget: then keep it whole rather than break it.
        cut = later[0] if later else max((i for i in turn_starts if i < start), default=0)
        return messages[cut:]

    return trim


def _starts_turn(message: ModelMessage) -> bool:
    return isinstance(message, ModelRequest) and not _has_tool_returns(message)
