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
from collections.abc import AsyncIterator

import orjson
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

MODEL_NAME = "scripted"
BURST = 32
NOW = "{now}"
_TOKEN = re.compile(r"\s*\S+|\s+")
_SYSTEM_NOTE = re.compile(r"^<system>(.*)</system>$", re.DOTALL)


def tokenize(text: str) -> list[str]:
    """Split text into word-sized tokens that join back to exactly the same text."""
    return _TOKEN.findall(text)


def scripted_model(reply: str, tokens_per_second: float) -> FunctionModel:
    """The scripted provider as a pydantic-ai model."""
    delay = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | DeltaToolCalls]:
        last = messages[-1]
        results = [part for part in last.parts if isinstance(part, ToolReturnPart)]
        text = _latest_input(messages)
        if text.startswith("/error"):
            raise ModelAPIError(MODEL_NAME, text.removeprefix("/error").strip() or "scripted error")
        if text.startswith("/tool ") and not results:
            yield _tool_call(text)
            return
        if results:
            answer = "\n".join(_describe(result) for result in results)
        else:
            answer = reply.replace("{message}", text)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, token in enumerate(tokenize(answer)):
            # Token i is due at start + i * delay, so slow ticks do not add up to drift.
            # At 0 tokens/s it still yields to the loop every BURST tokens, so other
            # sessions keep moving while one streams as fast as it can.
            if index and (delay or index % BURST == 0):
                await asyncio.sleep(max(0.0, start + index * delay - loop.time()))
            yield token.replace(NOW, str(time.time_ns() // 1000)) if NOW in token else token

    return FunctionModel(stream_function=stream, model_name=MODEL_NAME)


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


def _tool_call(directive: str) -> DeltaToolCalls:
    name, _, raw_args = directive.removeprefix("/tool ").strip().partition(" ")
    try:
        args = orjson.loads(raw_args) if raw_args.strip() else {}
    except orjson.JSONDecodeError as error:
        raise ModelAPIError(MODEL_NAME, f"/tool arguments are not JSON: {error}") from None
    if not isinstance(args, dict):
        raise ModelAPIError(MODEL_NAME, "/tool arguments must be a JSON object")
    return {
        0: DeltaToolCall(
            name=name, json_args=orjson.dumps(args).decode(), tool_call_id=f"call_{name}"
        )
    }


def _describe(result: ToolReturnPart) -> str:
    if result.outcome != "success":
        return f"Tool {result.tool_name} failed: {result.model_response_str(wrap_if_error=False)}"
    return f"Tool {result.tool_name} returned: {result.model_response_str(wrap_if_error=False)}"
