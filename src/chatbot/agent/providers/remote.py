"""Anthropic and any OpenAI-compatible server, through pydantic-ai and the official SDKs.

Retries are ours, not the SDKs': one tenacity transport retries 429, 5xx, timeouts and
connection failures with bounded, configurable exponential backoff (honouring
`Retry-After`), and after the last attempt hands the real response to the SDK, so a
final 500 is reported as a 500, not as a connection error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.retries import AsyncHTTPX2TenacityTransport, RetryConfig
from tenacity import (
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from chatbot.config import Settings

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def anthropic_model(settings: Settings) -> Model:
    """Claude via the Anthropic Messages API (ANTHROPIC_BASE_URL for a compatible server)."""
    assert settings.anthropic_api_key is not None
    client = AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        max_retries=0,
        http_client=retrying_http_client(settings),
    )
    return AnthropicModel(
        settings.anthropic_model, provider=AnthropicProvider(anthropic_client=client)
    )


def openai_model(settings: Settings) -> Model:
    """Any OpenAI-compatible chat completions server (OpenAI, vLLM, Ollama, llama.cpp)."""
    assert settings.openai_api_key is not None
    client = AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        max_retries=0,
        http_client=retrying_http_client(settings),
    )
    return OpenAIChatModel(settings.openai_model, provider=OpenAIProvider(openai_client=client))


def retrying_http_client(settings: Settings) -> httpx2.AsyncClient:
    """An HTTP client whose transport retries what is worth retrying, then gives up."""
    backoff = wait_exponential(
        multiplier=settings.llm_retry_initial_seconds, max=settings.llm_retry_max_seconds
    )
    config = RetryConfig(
        retry=retry_if_result(_retryable_response)
        | retry_if_exception_type((httpx2.TimeoutException, httpx2.TransportError)),
        wait=_honouring_retry_after(backoff, settings.llm_retry_max_seconds),
        stop=stop_after_attempt(settings.llm_max_retries + 1),
        before_sleep=_discard_response,
        retry_error_callback=_last_outcome,
    )
    transport = AsyncHTTPX2TenacityTransport(config)
    return httpx2.AsyncClient(
        transport=transport, timeout=httpx2.Timeout(settings.llm_timeout_seconds, connect=10.0)
    )


def _retryable_response(response: Any) -> bool:
    return isinstance(response, httpx2.Response) and response.status_code in RETRY_STATUSES


def _honouring_retry_after(
    backoff: Callable[[RetryCallState], float], max_wait: float
) -> Callable[[RetryCallState], float]:
    """Wait what the server's `Retry-After` asks (capped), else the exponential backoff."""

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            header = outcome.result().headers.get("retry-after", "")
            if header.isascii() and header.isdigit():
                return min(float(header), max_wait)
        return backoff(state)

    return wait


async def _discard_response(state: RetryCallState) -> None:
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        await outcome.result().aclose()


def _last_outcome(state: RetryCallState) -> Any:
    """After the last attempt: the last response as it was, or the last error raised."""
    assert state.outcome is not None
    return state.outcome.result()
