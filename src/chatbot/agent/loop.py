"""The turn loop: the model's requests and the tool calls they ask for, without an agent graph.

Measured with bench/costs.py (scripted model, a one-word reply, 1,000 sessions, the null
store): a turn cost 3.9 ms of CPU through pydantic-ai's `Agent.iter`, whose graph alone set
up about 1.9 ms per run (anyio task groups, capabilities, context managers, dataclass
copies) against 0.05 ms for the model's own `request_stream`; through this loop a turn
costs 0.2 ms. So the loop does what that graph did for this app's agent, on the library's
models, messages and toolsets, and tests/test_loop.py runs the same turns through a real
`Agent` and checks that the model receives the very same requests.

Each request, as the graph sent it: the history trimmed to the context window, made
provider-valid (`repair_messages`) and prepared by the model (`Model.prepare_messages`);
the newest request carries the instructions (the system prompt, then the session's context);
the tools are asked of every toolset again. A response's tool calls are all validated, then
run concurrently; their results answer them in the next request, in the order they were
made. Invalid arguments, an unknown tool or a `ModelRetry` answer the call with a retry,
which a tool gets `max_retries` times in a row before the turn fails; a `ToolFailed`
answers it with an error. Text without tool calls ends the turn; a response with neither
is asked again, once a turn. The turn stops before a request beyond `max_tool_rounds` rounds.

Not carried over, as this agent uses none of it: capabilities and hooks, output types other
than text, deferred, sequential and approval-required tools, toolset instructions, tool
reveals, suspended (background) responses, run ids, and usage limits other than the count
of requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic_ai import RunContext

# Private, but the library's own recipe for the retry a failed call is answered with (its
# docstring asks anything presenting such a failure to build it this way); test_loop.py
# fails if an upgrade moves or changes it.
from pydantic_ai._output import build_retried_tool_return
from pydantic_ai.exceptions import (
    ContentFilterError,
    IncompleteToolCall,
    ModelRetry,
    OutputTokenLimitExceeded,
    ToolFailed,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import (
    AgentInstructionSource,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    InstructionId,
    InstructionPart,
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponseStreamEvent,
    RetryFeedbackPart,
    RetryInfo,
    TextPart,
    ToolCallPart,
    ToolRetryCause,
    ToolReturn,
    ToolReturnPart,
    UserContent,
    UserPromptPart,
    repair_messages,
)
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import AbstractToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_ai.usage import RunUsage

from chatbot.agent.deps import TurnDeps

OUTPUT_RETRIES = 1
"""Responses with neither text nor tool calls that a turn asks again; one more fails it."""
TOOL_RETRIES = 1
"""Retries in a row for a tool that sets no `max_retries`, or that no toolset has."""

Trim = Callable[[list[ModelMessage]], list[ModelMessage]]
Content = str | Sequence[UserContent] | None
"""What a tool returned for the model to read as a user prompt, after the results."""


async def read_stream(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
    on_event: Callable[[ModelResponseStreamEvent], None],
) -> ModelResponse:
    """Stream one request of `model` into `on_event`; the whole response at the end.

    Cancelling the caller unwinds `request_stream`, which closes the upstream response.
    """
    async with model.request_stream(messages, model_settings, model_request_parameters) as stream:
        async for event in stream:
            on_event(event)
    return stream.get()


@dataclass(frozen=True, slots=True)
class _Tool:
    """A tool and the agent's toolset that offers it, which makes the call: a wrapper
    (the MCP pool's `PooledServer`) fills in arguments before the server sees them."""

    toolset: AbstractToolset[TurnDeps]
    tool: ToolsetTool[TurnDeps]


@dataclass(slots=True)
class _Retries:
    """Each tool's failures in a row, counted the way pydantic-ai's `ToolManager` counts them:
    a round's failure adds one, a round's success clears the count."""

    counts: dict[str, int] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)

    def charge(self, name: str, max_retries: int, error: Exception) -> int:
        """The attempt this failure makes; the turn fails past `max_retries`."""
        count = self.counts.get(name, 0)
        if count >= max_retries:
            raise UnexpectedModelBehavior(
                f"Tool {name!r} exceeded max retries count of {max_retries}"
            ) from error
        self.failed.add(name)
        return count + 1

    def next_round(self) -> None:
        counts = {name: n for name, n in self.counts.items() if name not in self.succeeded}
        counts.update({name: self.counts.get(name, 0) + 1 for name in self.failed})
        self.counts = counts
        self.failed = set()
        self.succeeded = set()


class TurnLoop:
    """The agent, built once per process: instructions, tools, settings, history budget."""

    def __init__(
        self,
        instructions: str,
        toolsets: Sequence[AbstractToolset[TurnDeps]],
        settings: ModelSettings,
        trim: Trim,
        max_tool_rounds: int,
    ) -> None:
        self.instructions = InstructionPart(
            instructions.strip(), id=InstructionId(source=AgentInstructionSource())
        )
        self.toolsets = list(toolsets)
        self.settings = settings
        self.trim = trim
        self.max_requests = max_tool_rounds + 1

    async def run(
        self,
        model: Model,
        history: list[ModelMessage],
        deps: TurnDeps,
        context: str,
        on_event: Callable[[Any], None],
        checkpoint: Callable[[], Awaitable[None]],
    ) -> None:
        """Answer the end of `history`, streaming into `on_event`; `checkpoint` after each
        response is handled (a worker taking over resumes from there).

        `context` is this turn's part of the instructions. Raises what the model raises,
        `UsageLimitExceeded` after `max_tool_rounds` rounds of tools, and
        `UnexpectedModelBehavior` when the model cannot be brought back on track.
        """
        parts = [self.instructions, InstructionPart(context.strip(), dynamic=True)]
        instructions = InstructionPart.join(parts)
        ctx = RunContext(deps=deps, model=model, usage=RunUsage(), max_retries=TOOL_RETRIES)
        retries = _Retries()
        output_retries = 0
        messages = history
        request = messages[-1] if messages else None
        if not isinstance(request, ModelRequest):
            request = ModelRequest(parts=[])  # as the graph asked for a reply to a reply
            messages.append(request)
        for _ in range(self.max_requests):
            request.instructions = instructions
            request.timestamp = datetime.now(UTC)
            messages = self.trim(messages)
            tools = await self._tools(ctx)
            params = ModelRequestParameters(
                function_tools=[tool.tool.tool_def for tool in tools.values()],
                instruction_parts=parts,
            )
            sent = _prepared(model, messages, params)
            response = await read_stream(
                model, sent, ModelSettings(**self.settings), params, on_event
            )
            response.model_id = response.model_id or model.model_id
            messages.append(response)
            calls = [part for part in response.parts if isinstance(part, ToolCallPart)]
            if calls:
                answer = await self._call_tools(response, calls, tools, ctx, retries, on_event)
            elif any(isinstance(part, TextPart) and part.content for part in response.parts):
                answer = None
            else:
                output_retries += 1
                answer = [_no_output(response, output_retries, bool(tools))]
            # A worker taking over after a crash starts from here: no finished tool call
            # (and no proposed transaction) is ever made twice.
            await checkpoint()
            if answer is None:
                return
            request = ModelRequest(parts=answer)
            messages.append(request)
        raise UsageLimitExceeded(f"The next request would exceed {self.max_requests} requests")

    async def _tools(self, ctx: RunContext[TurnDeps]) -> dict[str, _Tool]:
        """Every toolset's tools now (an MCP server's may have changed since the last request)."""
        tools: dict[str, _Tool] = {}
        for toolset in self.toolsets:
            for name, tool in (await toolset.get_tools(ctx)).items():
                if name in tools:
                    raise UserError(f"Two toolsets define a tool named {name!r}")
                tools[name] = _Tool(toolset, tool)
        return tools

    async def _call_tools(
        self,
        response: ModelResponse,
        calls: list[ToolCallPart],
        tools: dict[str, _Tool],
        ctx: RunContext[TurnDeps],
        retries: _Retries,
        on_event: Callable[[Any], None],
    ) -> list[ModelRequestPart]:
        """Validate every call, then run them concurrently; the parts that answer them."""
        runs: list[Coroutine[Any, Any, tuple[ToolReturnPart, Content]]] = []
        try:
            for call in calls:
                try:
                    checked = _validate(call, tools, retries)
                except UnexpectedModelBehavior:
                    _check_complete(response)
                    on_event(FunctionToolCallEvent(call, args_valid=False))
                    raise
                if isinstance(checked, ToolReturnPart):
                    on_event(FunctionToolCallEvent(call, args_valid=False))
                    runs.append(_answered(checked))
                else:
                    on_event(FunctionToolCallEvent(call, args_valid=True))
                    runs.append(_call(call, tools[call.tool_name], checked, ctx, retries))
            results = await _settle(runs, on_event)
        finally:
            for run in runs:
                run.close()  # the ones never started (a later call failed validation)
        retries.next_round()
        answer: list[ModelRequestPart] = [part for part, _ in results]
        answer.extend(UserPromptPart(content) for _, content in results if content)
        return answer


def _prepared(
    model: Model, messages: list[ModelMessage], params: ModelRequestParameters
) -> list[ModelMessage]:
    """The history as the model is sent it: repaired, then prepared for this model."""
    repaired = repair_messages(messages)
    prepared = model.prepare_messages(repaired, params)
    return repaired if prepared is repaired else repair_messages(prepared)


def _validate(
    call: ToolCallPart, tools: dict[str, _Tool], retries: _Retries
) -> dict[str, Any] | ToolReturnPart:
    """The call's validated arguments, or the retry that answers it."""
    found = tools.get(call.tool_name)
    if found is None:
        known = ", ".join(repr(name) for name in sorted(tools))
        hint = f"Available tools: {known}" if known else "No tools available."
        error = ModelRetry(f"Unknown tool name: {call.tool_name!r}. {hint}")
        return _retry(call, error, retries, TOOL_RETRIES, "unknown_tool")
    validator = found.tool.args_validator
    try:
        if isinstance(call.args, str):
            return validator.validate_json(call.args or "{}")  # type: ignore[no-any-return]
        return validator.validate_python(call.args or {})  # type: ignore[no-any-return]
    except ValidationError as error:
        return _retry(call, error, retries, found.tool.max_retries)


def _retry(
    call: ToolCallPart,
    error: ValidationError | ModelRetry,
    retries: _Retries,
    max_retries: int,
    cause: ToolRetryCause | None = None,
) -> ToolReturnPart:
    attempt = retries.charge(call.tool_name, max_retries, error)
    part = build_retried_tool_return(
        error, tool_name=call.tool_name, tool_call_id=call.tool_call_id, cause=cause
    )
    if part.retry is not None:
        part.retry = replace(part.retry, attempt=attempt, max_retries=max_retries)
    return part


def _check_complete(response: ModelResponse) -> None:
    """A call the token limit cut off is the limit's fault, not the model's: say so."""
    last = response.parts[-1] if response.parts else None
    if response.finish_reason == "length" and isinstance(last, ToolCallPart):
        try:
            last.args_as_dict(raise_if_invalid=True)
        except Exception:
            raise IncompleteToolCall(
                "Model token limit exceeded while generating a tool call, resulting in "
                "incomplete arguments."
            ) from None


async def _answered(part: ToolReturnPart) -> tuple[ToolReturnPart, Content]:
    """A call already answered (by a retry), settled in turn with the others."""
    return part, None


async def _call(
    call: ToolCallPart,
    found: _Tool,
    args: dict[str, Any],
    ctx: RunContext[TurnDeps],
    retries: _Retries,
) -> tuple[ToolReturnPart, Content]:
    """Run one validated call; what it returned, its error, or the retry it asked for."""
    name, tool = call.tool_name, found.tool
    tool_ctx = replace(
        ctx,
        tool_name=name,
        tool_call_id=call.tool_call_id,
        retry=retries.counts.get(name, 0),
        max_retries=tool.max_retries,
    )
    try:
        result = await found.toolset.call_tool(name, args, tool_ctx, tool)
    except ToolFailed as error:
        failed = ToolReturnPart(name, error.message, call.tool_call_id, outcome="failed")
        return failed, None
    except ModelRetry as error:
        return _retry(call, error, retries, tool.max_retries), None
    retries.succeeded.add(name)
    if isinstance(result, ToolReturn):
        returned = ToolReturnPart(
            name, result.return_value, call.tool_call_id, metadata=result.metadata
        )
        return returned, result.content or None
    return ToolReturnPart(name, result, call.tool_call_id), None


async def _settle(
    runs: list[Coroutine[Any, Any, tuple[ToolReturnPart, Content]]],
    on_event: Callable[[Any], None],
) -> list[tuple[ToolReturnPart, Content]]:
    """Await every call, reporting each result as it comes; the results in call order.

    One call runs in this task; several run in tasks of their own, and when one fails
    (or the turn is cancelled) the others are cancelled and waited for.
    """
    if len(runs) == 1:
        result = await runs[0]
        on_event(FunctionToolResultEvent(result[0], content=result[1]))
        return [result]
    tasks = [asyncio.create_task(run) for run in runs]
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=tasks.index):  # the same order on every run
                part, content = task.result()
                on_event(FunctionToolResultEvent(part, content=content))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [task.result() for task in tasks]


def _no_output(response: ModelResponse, attempt: int, has_tools: bool) -> RetryFeedbackPart:
    """Ask again for a response with neither text nor tool calls, unless asking cannot help."""
    if response.finish_reason == "length":
        raise OutputTokenLimitExceeded(
            "Model token limit exceeded before any response was generated."
        )
    if response.finish_reason == "content_filter":
        raise ContentFilterError("Content filter triggered")
    if attempt > OUTPUT_RETRIES:
        raise UnexpectedModelBehavior(f"Exceeded maximum output retries ({OUTPUT_RETRIES})")
    # The exact words matter: the models render the library's own feedback in the system voice.
    wanted = "return text or call a tool" if has_tools else "return text"
    return RetryFeedbackPart(
        f"Please {wanted}.",
        retry=RetryInfo("no_output", attempt=attempt, max_retries=OUTPUT_RETRIES),
    )
