"""A deterministic provider for tests, demos and benchmarks.

It answers the latest user message (or system note) with `SCRIPTED_REPLY`, where
`{message}` stands for that message's text, streamed word by word at
`SCRIPTED_TOKENS_PER_SECOND` (0: as fast as possible). Two directives let a message
script other behaviour through the same interface the real providers use:

- `/tool NAME {"json": "args"}`: call tool NAME with those arguments, then report
  what it returned (or how it failed).
- `/error TEXT`: fail the model step with TEXT, as a provider error would.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from chatbot.agent.providers.base import (
    ModelRequest,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
)
from chatbot.sessions.messages import Message

_TOKEN = re.compile(r"\s*\S+|\s+")
BURST = 32


def tokenize(text: str) -> list[str]:
    """Split text into word-sized tokens that join back to exactly the same text."""
    return _TOKEN.findall(text)


class ScriptedProvider:
    """Streams a templated reply, a scripted tool call, or a scripted error."""

    def __init__(self, reply: str, tokens_per_second: float) -> None:
        self.reply = reply
        self.delay = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
        """Stream the reply to the conversation's latest input."""
        trigger, results = _latest_input(request.history)
        text = trigger.content if trigger is not None else ""
        if text.startswith("/error"):
            raise ProviderError(text.removeprefix("/error").strip() or "scripted error")
        if text.startswith("/tool "):
            if not results:
                yield _tool_call(text)
                return
            reply = "\n".join(_describe(result) for result in results)
        else:
            reply = self.reply.replace("{message}", text)
        for index, token in enumerate(tokenize(reply)):
            # At 0 tokens/s it still yields to the loop every BURST tokens, so other
            # sessions keep moving while one streams as fast as it can.
            if index and (self.delay or index % BURST == 0):
                await asyncio.sleep(self.delay)
            yield TextDelta(token)


def _latest_input(history: Sequence[Message]) -> tuple[Message | None, list[Message]]:
    """The newest user or system message, and the tool results that came after it."""
    results: list[Message] = []
    for message in reversed(history):
        if message.tool is not None:
            results.append(message)
        elif message.sender != "agent":
            return message, results[::-1]
    return None, results[::-1]


def _tool_call(directive: str) -> ToolCallRequest:
    name, _, raw_args = directive.removeprefix("/tool ").strip().partition(" ")
    try:
        args: Any = orjson.loads(raw_args) if raw_args.strip() else {}
    except orjson.JSONDecodeError as error:
        raise ProviderError(f"scripted /tool arguments are not JSON: {error}") from None
    if not isinstance(args, dict):
        raise ProviderError("scripted /tool arguments must be a JSON object")
    return ToolCallRequest(call_id=f"call_{name}", name=name, args=args)


def _describe(result: Message) -> str:
    tool = result.tool
    assert tool is not None
    if tool.error is not None:
        return f"Tool {tool.name} failed: {tool.error}"
    return f"Tool {tool.name} returned: {orjson.dumps(tool.result).decode()}"
