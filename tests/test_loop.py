"""The turn loop asks the model what pydantic-ai's `Agent.iter` asked, and answers alike.

`TurnLoop` (chatbot/agent/loop.py) stands in for the agent graph to save CPU, and so
relies on how the library prepares a request and answers a failed tool call. Each case
runs one turn twice, from one agent definition (the runtime's instructions, tools,
settings, history trimmer and round limit): once through a real `Agent`, as the runtime
did before the loop, and once through `AgentRuntime.run_turn`. The model must receive the
same requests (messages, instructions, tool definitions, settings), the transcript must
read the same, and the turn must end the same way. A pydantic-ai upgrade that changes what
the graph does, or moves what the loop uses, fails here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import ProcessHistory
from pydantic_ai.exceptions import AgentRunError, ToolFailed, UsageLimitExceeded
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ToolCallPart,
    ToolReturn,
)
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset
from pydantic_ai.usage import UsageLimits

from chatbot.agent.deps import TurnDeps
from chatbot.agent.history import to_model_messages
from chatbot.agent.loop import read_stream
from chatbot.agent.providers import ModelBackend
from chatbot.agent.runtime import AgentRuntime, _TurnWriter, describe_failure
from chatbot.config import ProviderName, Settings
from chatbot.model import Message, MessageStatus, ToolCallInfo, WalletAccount
from chatbot.model.messages import ToolStatus
from chatbot.tools.mcp_pool import McpPool, ServerConfig
from chatbot.tools.wallet import wallet_toolset

VITALIK = "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045"
NETWORKS = {"testnet": {"chain_id": 31337, "rpc_url": "http://127.0.0.1:9", "currency": "ETH"}}
Reply = list[ModelResponsePart] | ModelResponse


class Replies(Model):
    """A model that answers from a script, one reply per request, and records each request."""

    def __init__(self, script: list[Reply]) -> None:
        super().__init__()
        self.script = script
        self.requests: list[tuple[list[ModelMessage], Any, ModelRequestParameters]] = []

    @property
    def model_name(self) -> str:
        return "replies"

    @property
    def system(self) -> str:
        return "test"

    async def request(self, *args: Any, **kwargs: Any) -> ModelResponse:
        raise AssertionError("both paths stream")

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        self.requests.append((messages, model_settings, model_request_parameters))
        reply = self.script[len(self.requests) - 1]
        response = reply if isinstance(reply, ModelResponse) else ModelResponse(parts=reply)
        yield CompletedStreamedResponse(
            dataclasses.replace(response, model_name=self.model_name),
            model_request_parameters=model_request_parameters,
            replay_events=True,
        )


class Live(WrapperModel):
    """The runtime's former `LiveModel`: the graph's requests streamed into the turn."""

    def __init__(self, wrapped: Model, on_event: Callable[[Any], None]) -> None:
        super().__init__(wrapped)
        self.on_event = on_event

    async def request(self, *args: Any) -> ModelResponse:
        return await read_stream(self.wrapped, *args, self.on_event)


class Transcript:
    """A session as a turn sees it, logging what the turn writes."""

    def __init__(self, history: list[Message], account: WalletAccount | None) -> None:
        self.id = "s-loop"
        self.network = "testnet"
        self.account = account
        self.messages = history
        self.log: list[tuple[Any, ...]] = []

    def start_agent_message(self) -> Message:
        self.log.append(("agent",))
        return Message(sender="agent", content="")

    def append_text(self, message: Message, text: str) -> None:
        self.log.append(("text", text))

    def finish_message(self, message: Message, status: MessageStatus) -> None:
        self.log.append(("finish", status))

    def start_tool(self, call_id: str, name: str, args: dict[str, Any]) -> Message:
        self.log.append(("tool", call_id, name, args))
        return Message(sender="agent", content="", tool=ToolCallInfo(name, args, call_id=call_id))

    def finish_tool(
        self, message: Message, *, result: Any = None, error: str | None = None
    ) -> None:
        assert message.tool is not None
        self.log.append(("tool done", message.tool.call_id, result, error))

    def add_system_message(self, text: str) -> Message:
        self.log.append(("system", text))
        return Message(sender="system", content=text)

    def propose_wallet_tx(self, **proposal: Any) -> Any:
        self.log.append(("propose", proposal["to"], proposal["value"]))
        return type("Tx", (), {"id": "tx_1", "chain_id": 31337, "network": "testnet"})

    async def checkpoint(self) -> None:
        self.log.append(("checkpoint",))


async def run_through_agent(runtime: AgentRuntime, model: Model, transcript: Transcript) -> None:
    """The runtime's `run_turn` as it was on `Agent.iter`, from the same definition."""
    loop = runtime.loop
    agent: Agent[TurnDeps, str] = Agent(
        deps_type=TurnDeps,
        instructions=loop.instructions.content,
        capabilities=[ProcessHistory(loop.trim)],
        toolsets=loop.toolsets,
        model_settings=loop.settings,
    )
    chain_id = runtime.settings.networks[transcript.network].chain_id
    context = runtime._session_context(transcript, chain_id)

    @agent.instructions
    def session(ctx: RunContext[TurnDeps]) -> str:
        return context

    turn = _TurnWriter(transcript)
    deps = TurnDeps(transcript, transcript.network, chain_id)
    try:
        async with agent.iter(
            message_history=to_model_messages(transcript.messages),
            deps=deps,
            model=Live(model, turn.apply),
            usage_limits=UsageLimits(request_limit=loop.max_requests),
        ) as run:
            async for node in run:
                if Agent.is_call_tools_node(node):
                    async with node.stream(run.ctx) as events:
                        async for event in events:
                            turn.apply(event)
                    await transcript.checkpoint()
    except UsageLimitExceeded as error:
        transcript.log.append(("error", type(error).__name__))
        turn.close(MessageStatus.COMPLETE)
        transcript.add_system_message(
            f"Stopped after {runtime.settings.max_tool_rounds} rounds of tool calls."
        )
    except AgentRunError as error:
        transcript.log.append(("error", type(error).__name__))
        turn.close(MessageStatus.ERROR)
        transcript.add_system_message(describe_failure(error))
    else:
        turn.close(MessageStatus.COMPLETE)


def logging_errors(run: Callable[..., Any], transcript: Transcript) -> Callable[..., Any]:
    """`TurnLoop.run` that notes in the log which error ended the turn."""

    async def logged(*args: Any) -> None:
        try:
            await run(*args)
        except AgentRunError as error:
            transcript.log.append(("error", type(error).__name__))
            raise

    return logged


def runtime_of(toolsets: list[AbstractToolset[TurnDeps]], **settings: Any) -> AgentRuntime:
    config = Settings(
        llm_provider="scripted",
        networks=NETWORKS,
        _env_file=None,  # type: ignore[call-arg]
        **settings,
    )
    backend = ModelBackend(ProviderName.SCRIPTED, None, config.llm_context_tokens or 100_000)
    return AgentRuntime(backend, config, toolsets)


def drop(value: Any, keys: frozenset[str]) -> Any:
    """`value` (JSON data) without these keys anywhere in it."""
    if isinstance(value, dict):
        return {k: drop(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [drop(v, keys) for v in value]
    return value


def as_sent(request: tuple[list[ModelMessage], Any, ModelRequestParameters]) -> dict[str, Any]:
    """A request as the model reads it; run ids and clock times differ from run to run."""
    messages, settings, params = request
    public = {
        field.name: getattr(params, field.name)
        for field in dataclasses.fields(params)
        if not field.name.startswith("_")
    }
    # `toolset_id` names a toolset for durable execution and telemetry; no model sends it.
    public["function_tools"] = [
        dataclasses.replace(tool, toolset_id=None) for tool in params.function_tools
    ]
    dumped = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
    return {
        "messages": drop(dumped, frozenset({"timestamp", "run_id", "conversation_id"})),
        "settings": settings,
        "parameters": public,
    }


async def both_ways(
    script: list[Reply],
    history: list[Message],
    toolsets: list[AbstractToolset[TurnDeps]],
    account: WalletAccount | None = None,
    **settings: Any,
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Run the turn through the agent and through the loop; what the model was sent and
    what the transcript shows, after checking that both ways agree on each."""
    runtime = runtime_of(toolsets, **settings)
    by_agent, by_loop = Replies(script), Replies(script)
    agent_transcript = Transcript(list(history), account)
    await run_through_agent(runtime, by_agent, agent_transcript)
    loop_transcript = Transcript(list(history), account)
    runtime.backend = dataclasses.replace(runtime.backend, model=by_loop)
    runtime.loop.run = logging_errors(runtime.loop.run, loop_transcript)
    await runtime.run_turn(loop_transcript, history[-1])
    sent = [as_sent(request) for request in by_agent.requests]
    assert [as_sent(request) for request in by_loop.requests] == sent
    assert loop_transcript.log == agent_transcript.log
    return sent, agent_transcript.log


def call(name: str, args: dict[str, Any] | str, call_id: str = "c1") -> ToolCallPart:
    return ToolCallPart(name, args if isinstance(args, str) else json.dumps(args), call_id)


def text(words: str) -> list[ModelResponsePart]:
    return [TextPart(words)]


def conversation(*, last: str = "Send 1 wei to Vitalik, please.") -> list[Message]:
    """An exchange with a tool round trip and a system note, then the user's message."""
    done = ToolCallInfo(
        "send_transaction_to_wallet",
        {"to": VITALIK, "value": "5"},
        status=ToolStatus.SUCCESS,
        call_id="old",
        result={"status": "pending"},
    )
    return [
        Message(sender="user", content="Hello"),
        Message(sender="agent", content="Hi! How can I help?"),
        Message(sender="user", content="Send 5 wei to Vitalik"),
        Message(sender="agent", content="", tool=done),
        Message(sender="system", content="Transaction sent: 0xabc"),
        Message(sender="agent", content="Done: it is sent."),
        Message(sender="user", content=last),
    ]


def other_tools() -> FunctionToolset[TurnDeps]:
    """A tool that fails, and one that returns content for the model besides its value.

    Both are coroutines: plain functions would run in threads and finish in any order, and
    the two ways of running a turn would then log their results in different orders.
    """
    toolset: FunctionToolset[TurnDeps] = FunctionToolset()

    @toolset.tool_plain
    async def broken(reason: str) -> str:
        """Always fails."""
        raise ToolFailed(f"broken: {reason}")

    @toolset.tool_plain
    async def chart(symbol: str) -> ToolReturn[str]:
        """A price chart."""
        return ToolReturn(return_value=f"{symbol} chart", content=f"The {symbol} chart, drawn.")

    return toolset


async def test_a_text_reply_is_asked_for_with_the_same_request() -> None:
    sent, log = await both_ways(
        [text("Sure thing.")],
        conversation(),
        [wallet_toolset()],
        account=WalletAccount(VITALIK, chain_id=1),
    )
    instructions = sent[0]["messages"][-1]["instructions"]
    assert instructions.startswith("You are an Ethereum operations assistant")
    assert instructions.endswith("ask them to switch before signing.")
    assert [tool.name for tool in sent[0]["parameters"]["function_tools"]] == [
        "send_transaction_to_wallet"
    ]
    assert log[-1] == ("checkpoint",)


async def test_a_long_history_is_trimmed_the_same_way() -> None:
    history = [
        Message(sender="user" if i % 2 == 0 else "agent", content=f"message {i} " + "w " * 400)
        for i in range(12)
    ]
    sent, _ = await both_ways(
        [text("Short.")], history, [wallet_toolset()], llm_context_tokens=3000
    )
    assert 1 < len(sent[0]["messages"]) < len(history)


async def test_a_tool_round_trip_is_the_same() -> None:
    sent, log = await both_ways(
        [[call("send_transaction_to_wallet", {"to": VITALIK, "value": "1"})], text("Sent.")],
        conversation(),
        [wallet_toolset()],
    )
    assert len(sent) == 2
    assert ("propose", VITALIK, "1") in log
    assert log.count(("checkpoint",)) == 2


async def test_unknown_tools_and_invalid_arguments_are_answered_with_retries_alike() -> None:
    sent, _ = await both_ways(
        [
            [
                TextPart("Let me try."),
                call("no_such_tool", {}, "c1"),
                call("send_transaction_to_wallet", {"to": VITALIK}, "c2"),
                call("send_transaction_to_wallet", "{not json", "c3"),
            ],
            text("I could not send it."),
        ],
        conversation(),
        [wallet_toolset()],
    )
    returns = sent[1]["messages"][-1]["parts"]
    assert [part["outcome"] for part in returns] == ["retried"] * 3
    assert [part["retry"]["cause"] for part in returns] == [
        "unknown_tool",
        "validation_error",
        "validation_error",
    ]


async def test_a_tool_asking_for_a_retry_twice_in_a_row_ends_the_turn_alike() -> None:
    bad_address = call("send_transaction_to_wallet", {"to": VITALIK.lower(), "value": "1"})
    sent, log = await both_ways([[bad_address], [bad_address]], conversation(), [wallet_toolset()])
    assert sent[1]["messages"][-1]["parts"][0]["retry"]["cause"] == "model_retry"
    assert ("error", "UnexpectedModelBehavior") in log
    good = call("send_transaction_to_wallet", {"to": VITALIK, "value": "1"})
    _, log = await both_ways(
        [[bad_address], [good], [bad_address], text("Done.")], conversation(), [wallet_toolset()]
    )
    assert log[-2:] == [("finish", MessageStatus.COMPLETE), ("checkpoint",)], "a success resets"


async def test_failed_tools_and_tool_content_are_answered_alike() -> None:
    sent, _ = await both_ways(
        [
            [call("broken", {"reason": "down"}, "c1"), call("chart", {"symbol": "ETH"}, "c2")],
            text("One worked."),
        ],
        conversation(),
        [wallet_toolset(), other_tools()],
    )
    parts = sent[1]["messages"][-1]["parts"]
    assert [part["part_kind"] for part in parts] == ["tool-return", "tool-return", "user-prompt"]
    assert parts[0]["outcome"] == "failed"


async def test_an_empty_response_is_asked_again_once() -> None:
    sent, _ = await both_ways([[], text("Here.")], conversation(), [wallet_toolset()])
    assert "Please return text or call a tool." in sent[1]["messages"][-1]["parts"][0]["content"]
    _, log = await both_ways([[], []], conversation(), [wallet_toolset()])
    assert ("error", "UnexpectedModelBehavior") in log
    cut = ModelResponse(parts=[], finish_reason="length")
    _, log = await both_ways([cut], conversation(), [wallet_toolset()])
    assert ("error", "OutputTokenLimitExceeded") in log


async def test_a_tool_call_cut_off_by_the_token_limit_ends_the_turn_alike() -> None:
    cut = ModelResponse(
        parts=[call("send_transaction_to_wallet", '{"to": "0xd8', "c1")], finish_reason="length"
    )
    _, log = await both_ways([cut, cut], conversation(), [wallet_toolset()])
    assert ("error", "IncompleteToolCall") in log


async def test_the_rounds_of_tools_are_limited_alike() -> None:
    again = [call("chart", {"symbol": "ETH"})]
    _, log = await both_ways(
        [again, again, again], conversation(), [other_tools()], max_tool_rounds=2
    )
    assert log[-1] == ("system", "Stopped after 2 rounds of tool calls.")


@pytest.fixture(scope="module")
async def pooled() -> AsyncIterator[McpPool]:
    """The built-in EVM server through the MCP pool, its node unreachable."""
    env = {"NETWORKS": json.dumps(NETWORKS)}
    config = ServerConfig(command="python", args=["-m", "chatbot.tools.evm"])
    pool = McpPool({"evm": config}, env)
    await pool.start()
    assert not pool.missing()
    yield pool
    await pool.stop()


async def test_an_mcp_servers_tools_are_offered_and_called_alike(pooled: McpPool) -> None:
    sent, log = await both_ways(
        [[call("get_balance", {"address": VITALIK})], text("The node is away.")],
        conversation(last="What is Vitalik's balance?"),
        [wallet_toolset(), *pooled.toolsets],
    )
    tools = {tool.name: tool for tool in sent[0]["parameters"]["function_tools"]}
    assert "get_balance" in tools
    assert "network" not in tools["get_balance"].parameters_json_schema["properties"]
    returned = sent[1]["messages"][-1]["parts"][0]
    assert returned["outcome"] == "failed"
    assert any(entry[0] == "tool done" and entry[3] for entry in log)
