"""Model providers, chosen by `LLM_PROVIDER`."""

from __future__ import annotations

from chatbot.agent.providers.base import Provider
from chatbot.agent.providers.scripted import ScriptedProvider
from chatbot.config import Settings

PROVIDERS = ("scripted",)


def build_provider(settings: Settings) -> Provider:
    """The provider `LLM_PROVIDER` names; a clear error for one that does not exist."""
    if settings.llm_provider == "scripted":
        return ScriptedProvider(settings.scripted_reply, settings.scripted_tokens_per_second)
    raise ValueError(
        f"LLM_PROVIDER={settings.llm_provider!r} is not available; choose one of {PROVIDERS}"
    )
