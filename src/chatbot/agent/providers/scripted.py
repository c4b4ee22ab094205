"""A deterministic model for tests, demos and benchmarks, driven through pydantic-ai.

It answers the latest user message (or system note) with `SCRIPTED_REPLY`, where
`{message}` stands for that message's text, streamed word by word at
`SCRIPTED_TOKENS_PER_SECOND` (0: as fast as possible). `{now}` in the reply becomes each
token's emit time (microseconds since the epoch, 16 digits): benchmarks measure token
latency from it. Two directives let a message
script other behaviour through the same agent loop the real models use:

- `/tool NAME {"json": "args"}`: call tool NAME with those arguments, then report
  what it returned (or how it failed).
- `/error TEXT`: fail the model request with TEXT, as a provider error would.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic_ai import RunContext
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponseStreamEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPartDelta,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.function import DeltaToolCall
from pydantic_ai.settings import ModelSettings

from chatbot.agent.loop import read_stream

MODEL_NAME = "scripted"
BURST = 32
NOW = "{now}"
_TOKEN = re.compile(r"\s*\S+|\s+")
_SYSTEM_NOTE = re.compile(r"^<system>(.*)</system>$", re.DOTALL)


def tokenize(text: str) -> list[str]:
    """Split text into word-sized tokens that join back to exactly the same text."""
    return _TOKEN.findall(text)


class ScriptedModel(Model):
    """The scripted provider as a pydantic-ai model.

    A `Model` of its own rather than a `FunctionModel`: the latter's peekable stream
    takes an anyio lock per delta, which at benchmark rates costs more than the rest of
    the server's work on a token (docs/BENCHMARKS.md).
    """

    def __init__(self, reply: str, tokens_per_second: float) -> None:
        super().__init__()
        self.reply = reply
        self.delay = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def system(self) -> str:
        return MODEL_NAME

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """The whole reply at once (the agent loop streams it; this is for completeness)."""
        return await read_stream(
            self, messages, model_settings, model_request_parameters, lambda _: None
        )

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """Stream the scripted answer to the newest input."""
        _, parameters = self.prepare_request(model_settings, model_request_parameters)
        yield ScriptedStream(parameters, _answer(messages, self.reply), self.delay)


@dataclass
class ScriptedStream(StreamedResponse):
    """One scripted answer: a tool call, or text token by token on schedule."""

    answer: str | DeltaToolCall = ""
    delay: float = 0.0
    _timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        if isinstance(self.answer, DeltaToolCall):
            call = self.answer
            for event in self._parts_manager.handle_tool_call_delta_events(
                vendor_part_id=0,
                tool_name=call.name,
                args=call.json_args,
                tool_call_id=call.tool_call_id,
            ):
                yield event
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        rest: list[str] = []
        part = 0
        for index, token in enumerate(tokenize(self.answer)):
            # Token i is due at start + i * delay, so slow ticks do not add up to drift.
            # At 0 tokens/s it still yields to the loop every BURST tokens, so other
            # sessions keep moving while one streams as fast as it can.
            if index and (self.delay or index % BURST == 0):
                await asyncio.sleep(max(0.0, start + index * self.delay - loop.time()))
            if NOW in token:
                token = token.replace(NOW, str(time.time_ns() // 1000))
            self._usage.output_tokens += 1
            if index == 0:
                for event in self._text(token):
                    if isinstance(event, PartStartEvent):
                        part = event.index
                    yield event
            else:
                # Later tokens go out as bare deltas; the parts manager gets them in one
                # piece at the end, as it rebuilds its part on every delta it is given.
                rest.append(token)
                yield PartDeltaEvent(index=part, delta=TextPartDelta(content_delta=token))
        if rest:
            for _ in self._text("".join(rest)):
                pass

    def _text(self, text: str) -> Iterator[ModelResponseStreamEvent]:
        return self._parts_manager.handle_text_delta(vendor_part_id="content", content=text)

    async def close_stream(self) -> None:
        """Nothing to close: no connection behind it."""

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def provider_name(self) -> str:
        return MODEL_NAME

    @property
    def provider_url(self) -> None:
        return None

    @property
    def timestamp(self) -> datetime:
        return self._timestamp


def _answer(messages: list[ModelMessage], reply: str) -> str | DeltaToolCall:
    """What the script says to the newest input; raises as a provider would for `/error`."""
    last = messages[-1]
    results = [part for part in last.parts if isinstance(part, ToolReturnPart)]
    if results:
        return "\n".join(_describe(result) for result in results)
    text = _latest_input(messages)
    if text.startswith("/error"):
        raise ModelAPIError(MODEL_NAME, text.removeprefix("/error").strip() or "scripted error")
    if text.startswith("/tool "):
        return _tool_call(text)
    return reply.replace("{message}", text)


def _latest_input(messages: list[ModelMessage]) -> str:
    """The newest user prompt or system note, as the user wrote it."""
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            continue
        for part in reversed(message.parts):
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                note = _SYSTEM_NOTE.match(part.content)
                return note.group(1) if note else part.content
    return ""


def _tool_call(directive: str) -> DeltaToolCall:
    name, _, raw_args = directive.removeprefix("/tool ").strip().partition(" ")
    try:
        args = orjson.loads(raw_args) if raw_args.strip() else {}
    except orjson.JSONDecodeError as error:
        raise ModelAPIError(MODEL_NAME, f"/tool arguments are not JSON: {error}") from None
    if not isinstance(args, dict):
        raise ModelAPIError(MODEL_NAME, "/tool arguments must be a JSON object")
    return DeltaToolCall(
        name=name, json_args=orjson.dumps(args).decode(), tool_call_id=f"call_{name}"
    )


def _describe(result: ToolReturnPart) -> str:
    if result.outcome != "success":
        return f"Tool {result.tool_name} failed: {result.model_response_str(wrap_if_error=False)}"
    return f"Tool {result.tool_name} returned: {result.model_response_str(wrap_if_error=False)}"
