"""The agent: its turn loop run for one session at a time, its stream events mapped onto
the session, and the titles of conversations.

One `TurnLoop` per process. Each turn runs it with that session's history and context
(network, wallet); text deltas stream into an agent message as the model sends them, tool
calls become their own messages. Cancelling the turn's task unwinds the model's stream
context manager, which closes the upstream HTTP response (or stops the local generation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    ModelHTTPError,
    UsageLimitExceeded,
)
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartEndEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
)
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import AbstractToolset

from chatbot.agent.deps import TurnDeps
from chatbot.agent.history import context_trimmer, to_model_messages
from chatbot.agent.loop import TurnLoop
from chatbot.agent.prompts import SYSTEM_PROMPT, TITLE_PROMPT, session_context
from chatbot.agent.providers import ModelBackend
from chatbot.config import ProviderName, Settings
from chatbot.errors import ModelUnavailable
from chatbot.model import Message, MessageStatus, redact
from chatbot.sessions.ports import Transcript
from chatbot.sessions.titles import clean_title
from chatbot.tools.mcp_pool import McpPool

log = logging.getLogger("chatbot.agent")


class AgentRuntime:
    """The process's one agent; `run_turn` runs it for one session at a time."""

    def __init__(
        self,
        backend: ModelBackend,
        settings: Settings,
        toolsets: Sequence[AbstractToolset[TurnDeps]] = (),
        pool: McpPool | None = None,
    ) -> None:
        """`toolsets` are the agent's tools; turns wait for `pool`'s first connections."""
        self.backend = backend
        self.settings = settings
        self.pool = pool
        self.ready = asyncio.Event()
        if backend.load is None:
            self.ready.set()
        budget = (
            backend.context_tokens
            - settings.llm_max_output_tokens
            - len(SYSTEM_PROMPT) // 4
            - 200  # the session context line and tool definitions
        )
        self.loop = TurnLoop(
            SYSTEM_PROMPT,
            toolsets,
            ModelSettings(max_tokens=settings.llm_max_output_tokens),
            context_trimmer(max(budget, 256)),
            settings.max_tool_rounds,
        )
        # Titles from the remote models only: the scripted and local ones would only
        # echo or ramble, and their conversations keep their first words.
        remote = backend.name in (ProviderName.ANTHROPIC, ProviderName.OPENAI)
        self.titler: Agent[None, str] | None = (
            Agent(instructions=TITLE_PROMPT, model_settings=ModelSettings(max_tokens=32))
            if remote and settings.llm_titles
            else None
        )

    def _session_context(self, transcript: Transcript, chain_id: int) -> str:
        account = transcript.account
        return session_context(
            transcript.network,
            chain_id,
            self.settings.networks[transcript.network].currency,
            account.address if account else None,
            account.chain_id if account else None,
        )

    async def load(self) -> None:
        """Start-up work of the model (loading weights); turns wait for it."""
        try:
            if self.backend.load is not None:
                await self.backend.load()
        finally:
            self.ready.set()

    def check_available(self) -> None:
        """Refuse work the model cannot do: its API key is missing."""
        if self.backend.missing_key is not None:
            raise ModelUnavailable(
                f"LLM_PROVIDER={self.backend.name.value} needs {self.backend.missing_key}; "
                "set it and restart the server.",
                retry_after=60,
            )

    @property
    def writes_titles(self) -> bool:
        """True with a remote model and LLM_TITLES."""
        return self.titler is not None and self.backend.model is not None

    async def title(self, exchange: Sequence[Message]) -> str | None:
        """Ask the model for a short title of the first exchange (one small request)."""
        model = self.backend.model
        if self.titler is None or model is None:
            return None
        text = "\n\n".join(f"{m.sender}: {m.content[:2000]}" for m in exchange if m.content)
        try:
            result = await self.titler.run(text, model=model)
        except AgentRunError as error:
            log.info("no title from the model", extra={"error": type(error).__name__})
            return None
        return clean_title(result.output)

    async def run_turn(self, transcript: Transcript, trigger: Message) -> None:
        """Answer `trigger`: stream the model's reply, run its tool calls, until done."""
        await self.ready.wait()
        await self._wait_for_tools(transcript)
        model = self.backend.model
        assert model is not None, "check_available() guards turns without a model"
        chain_id = self.settings.networks[transcript.network].chain_id
        turn = _TurnWriter(transcript)
        try:
            await self.loop.run(
                model,
                to_model_messages(transcript.messages),
                TurnDeps(transcript, transcript.network, chain_id),
                self._session_context(transcript, chain_id),
                turn.apply,
                transcript.checkpoint,
            )
        except UsageLimitExceeded:
            turn.close(MessageStatus.COMPLETE)
            transcript.add_system_message(
                f"Stopped after {self.settings.max_tool_rounds} rounds of tool calls."
            )
        except AgentRunError as error:
            turn.close(MessageStatus.ERROR)
            log.warning(
                "model failed",
                extra={"session": redact(transcript.id), "error": type(error).__name__},
            )
            transcript.add_system_message(describe_failure(error))
        else:
            turn.close(MessageStatus.COMPLETE)

    async def _wait_for_tools(self, transcript: Transcript) -> None:
        """No tool-less turns: a turn at start-up waits for the MCP servers (a while)."""
        if self.pool is None or self.pool.started.is_set():
            return
        timeout = self.settings.mcp_connect_timeout_seconds
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.pool.started.wait()
        missing = self.pool.missing()
        if missing:
            transcript.add_system_message(
                f"Still connecting to the tool servers after {timeout:g} s; this reply runs "
                f"without the tools of: {', '.join(missing)}. They keep reconnecting."
            )


class _TurnWriter:
    """Applies pydantic-ai stream events to the transcript, one open text message at a time."""

    def __init__(self, transcript: Transcript) -> None:
        self.transcript = transcript
        self.text: Message | None = None
        self.tools: dict[str, Message] = {}

    def apply(self, event: Any) -> None:
        if isinstance(event, PartStartEvent):
            self.close(MessageStatus.COMPLETE)
            if isinstance(event.part, TextPart):
                self._write(event.part.content)
        elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
            self._write(event.delta.content_delta)
        elif isinstance(event, PartEndEvent) and isinstance(event.part, TextPart):
            self.close(MessageStatus.COMPLETE)
        elif isinstance(event, FunctionToolCallEvent):
            call = event.part
            self.tools[call.tool_call_id] = self.transcript.start_tool(
                call.tool_call_id, call.tool_name, _args(call)
            )
        elif isinstance(event, FunctionToolResultEvent):
            message = self.tools.pop(event.part.tool_call_id, None)
            if message is None:
                return
            result = event.part
            if getattr(result, "outcome", "success") == "success":
                self.transcript.finish_tool(message, result=getattr(result, "content", None))
            else:
                self.transcript.finish_tool(message, error=result.model_response_str())

    def _write(self, text: str) -> None:
        if not text:
            return  # an agent message appears with its first character, never empty
        if self.text is None:
            self.text = self.transcript.start_agent_message()
        self.transcript.append_text(self.text, text)

    def close(self, status: MessageStatus) -> None:
        """Finish the open text message, if any."""
        if self.text is not None:
            self.transcript.finish_message(self.text, status)
            self.text = None


def _args(call: ToolCallPart) -> dict[str, Any]:
    try:
        return call.args_as_dict()
    except ValueError:
        return {"arguments": call.args_as_json_str()}


def describe_failure(error: AgentRunError) -> str:
    """A sentence for the user; never the provider's raw body (nor anything secret)."""
    if isinstance(error, ModelHTTPError):
        return (
            f"The model provider answered HTTP {error.status_code} and did not recover "
            "after retries. You can send your message again."
        )
    if isinstance(error, ModelAPIError):
        return f"The model failed: {error.message}"
    return "The model answered in a way the agent could not use. Please try again."
