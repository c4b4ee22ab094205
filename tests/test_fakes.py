"""The fake LLM servers speak the providers' wire formats, and observe what the app does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes import (
    Error,
    FakeLLM,
    Kind,
    Reply,
    ToolCall,
    ToolCalls,
    last_user_text,
)
from tests.sse import Event, SSEReader

ARGS: dict[str, Any] = {"address": "0xabc", "blocks": [1, 2], "note": 'a "quoted" wört'}


@pytest.fixture
async def anthropic() -> AsyncIterator[FakeLLM]:
    async with FakeLLM.start("anthropic") as fake:
        yield fake


@pytest.fixture
async def openai() -> AsyncIterator[FakeLLM]:
    async with FakeLLM.start("openai") as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


def anthropic_body(text: str = "hi", *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
        **extra,
    }


def openai_body(text: str = "hi", *, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
        **extra,
    }


def body_for(kind: Kind, text: str, *, stream: bool = True) -> dict[str, Any]:
    return (
        anthropic_body(text, stream=stream)
        if kind == "anthropic"
        else openai_body(text, stream=stream)
    )


def generation_url(fake: FakeLLM) -> str:
    """Where the official SDK posts: base_url + the provider's path."""
    path = "/v1/messages" if fake.kind == "anthropic" else "/chat/completions"
    return fake.base_url + path


async def stream_events(
    http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> list[Event]:
    async with http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return await SSEReader(response).rest()


def reply_text(fake: FakeLLM, events: list[Event]) -> str:
    """The answer text in a stream of either provider."""
    if fake.kind == "anthropic":
        deltas = [e.json()["delta"] for e in events if e.event == "content_block_delta"]
        return "".join(d["text"] for d in deltas if d["type"] == "text_delta")
    chunks = [e.json() for e in events if e.data != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# -- Anthropic --------------------------------------------------------------------------------


async def test_anthropic_text_stream_is_the_documented_event_sequence(
    anthropic: FakeLLM, http: httpx.AsyncClient
) -> None:
    anthropic.script(Reply(["Hel", "lo ", "wörld"]))
    events = await stream_events(
        http, generation_url(anthropic), anthropic_body("hi"), {"x-api-key": "sk-ant"}
    )

    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(e.json()["type"] == e.event for e in events)
    message = events[0].json()["message"]
    assert (message["role"], message["model"], message["content"]) == (
        "assistant",
        "claude-test",
        [],
    )
    assert events[1].json()["content_block"] == {"type": "text", "text": ""}
    assert reply_text(anthropic, events) == "Hello wörld"
    final = events[-2].json()
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] > 0

    (request,) = anthropic.requests
    assert request.api_key == "sk-ant"
    assert request.messages == [{"role": "user", "content": "hi"}]
    assert request.completed_at is not None
    assert anthropic.disconnects == []


async def test_anthropic_tool_use_streams_partial_json(
    anthropic: FakeLLM, http: httpx.AsyncClient
) -> None:
    anthropic.script(ToolCall("get_balance", ARGS, text_before="Let me check. ", call_id="toolu_1"))
    events = await stream_events(http, generation_url(anthropic), anthropic_body())

    starts = [e.json() for e in events if e.event == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == ["text", "tool_use"]
    assert starts[1]["index"] == 1
    assert starts[1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_balance",
        "input": {},
    }
    pieces = [
        e.json()["delta"]["partial_json"]
        for e in events
        if e.event == "content_block_delta" and e.json()["index"] == 1
    ]
    assert len([p for p in pieces if p]) > 1
    assert json.loads("".join(pieces)) == ARGS
    assert reply_text(anthropic, events) == "Let me check. "
    assert [e.event for e in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2].json()["delta"]["stop_reason"] == "tool_use"


async def test_anthropic_message_count_tokens_and_models(
    anthropic: FakeLLM, http: httpx.AsyncClient
) -> None:
    anthropic.script(ToolCalls([ToolCall("a", {"x": 1}, call_id="toolu_a"), ToolCall("b")]))
    response = await http.post(generation_url(anthropic), json=anthropic_body(stream=False))
    message = response.json()
    assert (message["type"], message["stop_reason"]) == ("message", "tool_use")
    assert message["content"] == [
        {"type": "tool_use", "id": "toolu_a", "name": "a", "input": {"x": 1}},
        {"type": "tool_use", "id": message["content"][1]["id"], "name": "b", "input": {}},
    ]

    counted = await http.post(
        anthropic.base_url + "/v1/messages/count_tokens", json=anthropic_body("hello " * 40)
    )
    assert counted.json()["input_tokens"] > 40
    models = (await http.get(anthropic.base_url + "/v1/models")).json()
    assert models["data"][0]["type"] == "model"
    assert len(anthropic.requests) == 1, "side endpoints are recorded apart"
    assert [r.path for r in anthropic.side_requests] == ["/v1/messages/count_tokens", "/v1/models"]


async def test_anthropic_error_mid_stream(anthropic: FakeLLM, http: httpx.AsyncClient) -> None:
    anthropic.script(Reply(["partial"], then_error=Error(529)))
    events = await stream_events(http, generation_url(anthropic), anthropic_body())
    assert events[-1].event == "error"
    assert events[-1].json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


# -- OpenAI -----------------------------------------------------------------------------------


async def test_openai_text_stream_with_usage(openai: FakeLLM, http: httpx.AsyncClient) -> None:
    openai.script(Reply(["Hel", "lo ", "wörld"]))
    body = openai_body(stream_options={"include_usage": True})
    events = await stream_events(
        http, generation_url(openai), body, {"Authorization": "Bearer sk-oai"}
    )

    assert events[-1].data == "[DONE]"
    chunks = [e.json() for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["delta"]["content"] == ""
    assert reply_text(openai, events) == "Hello wörld"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert openai.requests[0].api_key == "sk-oai"


async def test_openai_tool_call_arguments_stream_in_pieces(
    openai: FakeLLM, http: httpx.AsyncClient
) -> None:
    openai.script(ToolCall("get_balance", ARGS, text_before="Checking.", call_id="call_1"))
    events = await stream_events(http, generation_url(openai), openai_body())

    chunks = [e.json() for e in events if e.data != "[DONE]"]
    assert all(c["choices"] for c in chunks), "no usage chunk unless include_usage"
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls") or []]
    assert deltas[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_balance", "arguments": ""},
    }
    pieces = [d["function"]["arguments"] for d in deltas]
    assert len([p for p in pieces if p]) > 1
    assert json.loads("".join(pieces)) == ARGS
    assert reply_text(openai, events) == "Checking."
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }


async def test_openai_completion_and_models(openai: FakeLLM, http: httpx.AsyncClient) -> None:
    openai.script(ToolCall("get_balance", ARGS, call_id="call_1"))
    completion = (await http.post(generation_url(openai), json=openai_body(stream=False))).json()
    choice = completion["choices"][0]
    assert (completion["object"], choice["finish_reason"]) == ("chat.completion", "tool_calls")
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert (call["id"], call["type"], call["function"]["name"]) == (
        "call_1",
        "function",
        "get_balance",
    )
    assert json.loads(call["function"]["arguments"]) == ARGS

    models = (await http.get(openai.base_url + "/models")).json()
    assert models["object"] == "list"
    assert models["data"][0]["object"] == "model"


# -- Errors -----------------------------------------------------------------------------------


async def test_errors_have_each_providers_shape(
    anthropic: FakeLLM, openai: FakeLLM, http: httpx.AsyncClient
) -> None:
    anthropic.script(Error(429, retry_after=2), Error(500, should_retry=False))
    limited = await http.post(generation_url(anthropic), json=anthropic_body())
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["type"] == "error"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    failed = await http.post(generation_url(anthropic), json=anthropic_body())
    assert (failed.status_code, failed.json()["error"]["type"]) == (500, "api_error")
    assert failed.headers["x-should-retry"] == "false"

    openai.script(Error(429, retry_after=0.5, message="slow down"))
    limited = await http.post(generation_url(openai), json=openai_body())
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "0.5"
    assert limited.json() == {
        "error": {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


async def test_required_key_and_request_validation(
    anthropic: FakeLLM, openai: FakeLLM, http: httpx.AsyncClient
) -> None:
    anthropic.require_key = openai.require_key = "sk-right"
    anthropic.script(Reply(["never sent"]))
    wrong = await http.post(
        generation_url(anthropic), json=anthropic_body(), headers={"x-api-key": "sk-wrong"}
    )
    assert (wrong.status_code, wrong.json()["error"]["type"]) == (401, "authentication_error")
    missing = await http.post(generation_url(openai), json=openai_body())
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "invalid_api_key")
    assert anthropic.pending == 1, "a rejected request takes no scripted response"

    no_max_tokens = anthropic_body()
    del no_max_tokens["max_tokens"]
    invalid = await http.post(
        generation_url(anthropic), json=no_max_tokens, headers={"x-api-key": "sk-right"}
    )
    assert (invalid.status_code, invalid.json()["error"]["type"]) == (400, "invalid_request_error")


# -- Disconnects ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_disconnect_is_seen_within_a_second_and_stops_the_stream(kind: Kind) -> None:
    async with FakeLLM.start(kind) as fake:
        fake.script(Reply(["tick "] * 200, delay=0.05))
        payload = json.dumps(body_for(kind, "go")).encode()
        path = generation_url(fake).removeprefix(fake.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        received = b""
        async with asyncio.timeout(5):
            while received.count(b"tick") < 2:
                received += await reader.read(4096)
        assert received.startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
        closed_at = time.monotonic()

        seen_at = await fake.wait_disconnect(timeout=1.0)
        assert seen_at - closed_at < 1.0
        (request,) = fake.requests
        await fake.wait_for(lambda: request.finished, timeout=1.0, what="stream end")
        assert request.disconnected_at == seen_at
        assert request.completed_at is None
        assert request.frames_sent < request.frames_total
        assert fake.disconnected.is_set()
        assert fake.in_flight == 0


async def test_closing_an_httpx_stream_early_is_a_disconnect(
    openai: FakeLLM, http: httpx.AsyncClient
) -> None:
    openai.default = Reply(["tick "] * 200, delay=0.05)
    async with http.stream("POST", generation_url(openai), json=openai_body()) as response:
        reader = SSEReader(response)
        await reader.until(lambda e: "tick" in e.data)
    await openai.wait_disconnect(timeout=1.0)
    assert openai.requests[0].frames_sent < openai.requests[0].frames_total


# -- Choosing responses -----------------------------------------------------------------------


async def test_script_is_consumed_in_order_then_default(
    anthropic: FakeLLM, http: httpx.AsyncClient
) -> None:
    anthropic.script(Reply("one"), Error(503))
    url = generation_url(anthropic)

    async def ask(text: str) -> httpx.Response:
        return await http.post(url, json=anthropic_body(text, stream=False))

    assert (await ask("first")).json()["content"][0]["text"] == "one"
    assert (await ask("second")).status_code == 503
    assert (await ask("third")).json()["content"][0]["text"] == "Echo: third"
    anthropic.default = Reply(["fixed"])
    assert (await ask("fourth")).json()["content"][0]["text"] == "fixed"
    assert anthropic.pending == 0
    assert Reply.words("three short words").text_chunks == ("three ", "short ", "words")
    assert [r.last_user_text for r in anthropic.requests] == ["first", "second", "third", "fourth"]


async def test_responder_answers_concurrent_streams_from_their_own_request(
    openai: FakeLLM, http: httpx.AsyncClient
) -> None:
    def respond(body: dict[str, Any]) -> Reply | None:
        text = last_user_text(body)
        return None if text == "scripted" else Reply([f"to {text}", "!"], delay=0.02)

    openai.responder = respond
    openai.script(Reply("from the script"))
    url = generation_url(openai)

    async def ask(text: str) -> str:
        return reply_text(openai, await stream_events(http, url, openai_body(text)))

    answers = list(await asyncio.gather(ask("alice"), ask("bob"), ask("scripted")))
    assert answers == ["to alice!", "to bob!", "from the script"]
    requests = await openai.wait_requests(3)
    assert sorted(r.last_user_text for r in requests) == ["alice", "bob", "scripted"]


async def test_many_streams_run_at_once(anthropic: FakeLLM, http: httpx.AsyncClient) -> None:
    anthropic.default = Reply(["x"] * 20, delay=0.05)
    url = generation_url(anthropic)
    tasks = [
        asyncio.create_task(stream_events(http, url, anthropic_body(str(n)))) for n in range(25)
    ]
    await anthropic.wait_for(lambda: anthropic.in_flight == 25, timeout=2.0, what="25 streams")
    results = await asyncio.gather(*tasks)
    assert [reply_text(anthropic, events) for events in results] == ["x" * 20] * 25


async def test_tool_results_and_last_user_text_on_the_second_round_trip(
    anthropic: FakeLLM, openai: FakeLLM, http: httpx.AsyncClient
) -> None:
    anthropic_messages = [
        {"role": "user", "content": [{"type": "text", "text": "balance?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "b", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "1 ETH"}],
        },
    ]
    await http.post(
        generation_url(anthropic), json={**anthropic_body(), "messages": anthropic_messages}
    )
    (request,) = anthropic.requests
    assert request.last_user_text == "balance?"
    assert [(r.call_id, r.content, r.is_error) for r in request.tool_results()] == [
        ("t1", "1 ETH", False)
    ]

    openai_messages = [
        {"role": "user", "content": "balance?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "1 ETH"},
    ]
    await http.post(generation_url(openai), json={**openai_body(), "messages": openai_messages})
    assert [(r.call_id, r.content) for r in openai.requests[0].tool_results()] == [("c1", "1 ETH")]


async def test_a_failing_responder_fails_the_test(http: httpx.AsyncClient) -> None:
    def broken(body: dict[str, Any]) -> Reply:
        raise KeyError("oops")

    stack = contextlib.AsyncExitStack()
    fake = await stack.enter_async_context(FakeLLM.start("anthropic"))
    fake.responder = broken
    response = await http.post(generation_url(fake), json=anthropic_body())
    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    with pytest.raises(RuntimeError, match="responder raised"):
        await stack.aclose()
