"""The turn loop: step the model, stream its text into the session, run its tool calls.

It is provider-independent and HTTP-independent: it reads the session's history and
writes changes through the session's methods, which turn them into events.
"""

from __future__ import annotations

from chatbot.agent.providers.base import (
    ModelRequest,
    Provider,
    ProviderError,
    TextDelta,
    ToolCallRequest,
)
from chatbot.sessions.messages import Message, MessageStatus
from chatbot.sessions.session import Session
from chatbot.tools.base import Toolbox, ToolError


class AgentRuntime:
    """One agent per process; each turn runs with one session's history and network."""

    def __init__(self, provider: Provider, toolbox: Toolbox, max_steps: int = 8) -> None:
        self.provider = provider
        self.toolbox = toolbox
        self.max_steps = max_steps

    async def run_turn(self, session: Session, trigger: Message) -> None:
        """Answer `trigger`: model steps and tool calls until the model is done."""
        for _ in range(self.max_steps):
            calls = await self._step(session)
            if not calls:
                return
            for call in calls:
                await self._run_tool(session, call)
        session.add_system_message(f"Stopped after {self.max_steps} rounds of tool calls.")

    async def _step(self, session: Session) -> list[ToolCallRequest]:
        request = ModelRequest(history=tuple(session.messages), network=session.network)
        message: Message | None = None
        calls: list[ToolCallRequest] = []
        try:
            async for event in self.provider.stream(request):
                if isinstance(event, TextDelta):
                    if message is None:
                        message = session.start_agent_message()
                    session.append_text(message, event.text)
                else:
                    calls.append(event)
        except ProviderError as error:
            if message is not None:
                session.finish_message(message, MessageStatus.ERROR)
            session.add_system_message(f"The model failed: {error}")
            return []
        if message is not None:
            session.finish_message(message, MessageStatus.COMPLETE)
        return calls

    async def _run_tool(self, session: Session, call: ToolCallRequest) -> None:
        message = session.start_tool(call.call_id, call.name, call.args)
        try:
            result = await self.toolbox.call(call.name, call.args, network=session.network)
        except ToolError as error:
            session.finish_tool(message, error=str(error))
        else:
            session.finish_tool(message, result=result)
