"""The peer's graph: one node calling a fake chat model that streams like our scripted provider.

LangGraph's agent server is measured against our server under the same load, so its model
must emit the same tokens at the same rate: the reply is `SCRIPTED_REPLY` (default
"You said: {message}") with `{message}` replaced by the last human message, split into
word-sized tokens, token i emitted at start + i/T on an absolute schedule (T =
`SCRIPTED_TOKENS_PER_SECOND`, 0: as fast as possible). Every `{now}` inside a token becomes
the emit time in microseconds since the epoch, so the load generator can measure each
token's latency from the bytes it receives, whatever the server wraps around them.

This file runs inside the peer's own venv (langchain-core, langgraph), never ours.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph

_TOKEN = re.compile(r"\s*\S+|\s+")
# Yield to the event loop every BURST tokens at 0 tokens/s, as our scripted provider does.
BURST = 32


def tokenize(text: str) -> list[str]:
    """Split text into word-sized tokens that join back to exactly the same text."""
    return _TOKEN.findall(text)


def stamp(token: str) -> str:
    """The token as emitted now: `{now}` becomes µs since the epoch (16 digits)."""
    if "{now}" not in token:
        return token
    return token.replace("{now}", str(time.time_ns() // 1000))


def _last_human(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            content = message.content
            if isinstance(content, str):
                return content
            return "".join(
                part if isinstance(part, str) else str(part.get("text", "")) for part in content
            )
    return ""


class ScriptedChatModel(BaseChatModel):
    """A chat model that streams a scripted reply token by token on an absolute schedule."""

    reply: str = os.environ.get("SCRIPTED_REPLY", "You said: {message}")
    tokens_per_second: float = float(os.environ.get("SCRIPTED_TOKENS_PER_SECOND", "20") or 0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _tokens(self, messages: list[BaseMessage]) -> list[str]:
        return tokenize(self.reply.replace("{message}", _last_human(messages)))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(stamp(token) for token in self._tokens(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    # Only the async stream: the server runs the graph on its event loop.
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        start = time.monotonic()
        rate = self.tokens_per_second
        for index, token in enumerate(self._tokens(messages)):
            if rate > 0:
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif index and index % BURST == 0:
                await asyncio.sleep(0)
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=stamp(token)))
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


model = ScriptedChatModel()


async def chat(state: MessagesState) -> dict[str, list[BaseMessage]]:
    """The graph's one node: answer the conversation with the scripted model."""
    reply = await model.ainvoke(state["messages"])
    return {"messages": [reply]}


graph = (
    StateGraph(MessagesState)
    .add_node("chat", chat)
    .add_edge(START, "chat")
    .add_edge("chat", END)
    .compile()
)
