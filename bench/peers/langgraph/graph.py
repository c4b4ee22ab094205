"""The peer's graph: one node calling a fake chat model that streams like our scripted provider.

LangGraph's agent server is measured against our server under the same load, so its model
must emit the same tokens at the same rate: the reply is `SCRIPTED_REPLY` (default
"You said: {message}") with `{message}` replaced by the last human message, split into
word-sized tokens, token i emitted at start + i/T on an absolute schedule (T =
`SCRIPTED_TOKENS_PER_SECOND`, 0: as fast as possible). Every `{now}` inside a token becomes
the emit time in microseconds since the epoch, so the load generator can measure each
token's latency from the bytes it receives, whatever the server wraps around them.

This file runs inside the peer's own venv (langchain-core, langgraph), never ours; the
token script itself is bench/baselines/script.py (stdlib only), which every baseline
replays, found through the PYTHONPATH server.py sets.
"""

from __future__ import annotations

import os
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

from bench.baselines.script import stamp, tokenize, tokens


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

    def _text(self, messages: list[BaseMessage]) -> str:
        return self.reply.replace("{message}", _last_human(messages))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(stamp(token) for token in tokenize(self._text(messages)))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    # Only the async stream: the server runs the graph on its event loop.
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for token in tokens(self._text(messages), self.tokens_per_second):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
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
