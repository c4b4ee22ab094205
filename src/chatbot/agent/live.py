"""A model wrapper that streams each request's events straight to the turn.

The agent graph sees a plain (non-streamed) request, so it adds nothing per delta;
the wrapper consumes the model's own stream and hands every event to the turn as it
arrives. pydantic-ai's streaming layer (`node.stream()`) costs about 40 µs of locks and
cancel scopes per delta on top of the model's stream (docs/BENCHMARKS.md has the numbers),
which alone would cap one core near 15,000 tokens/s. Cancelling the turn still unwinds
`request_stream`, which closes the upstream response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pydantic_ai.messages import ModelMessage, ModelResponse, ModelResponseStreamEvent
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings


class LiveModel(WrapperModel):
    """`wrapped`, streamed into `on_event` while the agent waits for the whole response."""

    def __init__(
        self, wrapped: Model, on_event: Callable[[ModelResponseStreamEvent], None]
    ) -> None:
        super().__init__(wrapped)
        self.on_event = on_event

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Stream the response into `on_event`, then return it whole.

        The stream is read in a task of its own: every delta then resumes a handful of
        frames instead of the agent graph's twenty. Cancelling this request cancels that
        task (asyncio passes a cancel on to the task being awaited).
        """
        return await asyncio.create_task(
            self._read(messages, model_settings, model_request_parameters)
        )

    async def _read(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        return await read_stream(
            self.wrapped, messages, model_settings, model_request_parameters, self.on_event
        )


async def read_stream(
    model: Model,
    messages: list[ModelMessage],
    model_settings: ModelSettings | None,
    model_request_parameters: ModelRequestParameters,
    on_event: Callable[[ModelResponseStreamEvent], None],
) -> ModelResponse:
    """Stream one request of `model` into `on_event`; the whole response at the end."""
    async with model.request_stream(messages, model_settings, model_request_parameters) as stream:
        async for event in stream:
            on_event(event)
    return stream.get()
