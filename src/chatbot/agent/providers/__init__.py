"""Model providers, chosen by `LLM_PROVIDER`; each yields a pydantic-ai `Model`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic_ai.models import Model

from chatbot.config import ProviderName, Settings

DEFAULT_CONTEXT_TOKENS = {
    ProviderName.ANTHROPIC: 200_000,
    ProviderName.OPENAI: 128_000,
    ProviderName.SCRIPTED: 100_000,
}


@dataclass(frozen=True, slots=True)
class ModelBackend:
    """The process's model and what the app must know about it."""

    name: ProviderName
    model: Model | None
    context_tokens: int
    missing_key: str | None = None
    load: Callable[[], Awaitable[None]] | None = None


def build_backend(settings: Settings) -> ModelBackend:
    """The model LLM_PROVIDER (or the keys that are set) selects."""
    name = settings.provider
    context = settings.llm_context_tokens
    if name is ProviderName.SCRIPTED:
        from chatbot.agent.providers.scripted import ScriptedModel

        model = ScriptedModel(settings.scripted_reply, settings.scripted_tokens_per_second)
        return ModelBackend(name, model, context or DEFAULT_CONTEXT_TOKENS[name])
    if name is ProviderName.LOCAL:
        from chatbot.agent.providers.local import LocalModel

        local = LocalModel.from_settings(settings)
        return ModelBackend(name, local.model, context or local.context_tokens, load=local.load)

    from chatbot.agent.providers.remote import anthropic_model, openai_model

    if name is ProviderName.ANTHROPIC:
        key, variable, build = settings.anthropic_api_key, "ANTHROPIC_API_KEY", anthropic_model
    else:
        key, variable, build = settings.openai_api_key, "OPENAI_API_KEY", openai_model
    if key is None:
        return ModelBackend(name, None, DEFAULT_CONTEXT_TOKENS[name], missing_key=variable)
    return ModelBackend(name, build(settings), context or DEFAULT_CONTEXT_TOKENS[name])
