"""Local stand-ins for external services the app talks to, for the end-to-end tests."""

from tests.fakes.explorers import FakeExplorers, NotVerified, RateLimited, ServerError, Verified
from tests.fakes.llm import (
    Echo,
    Error,
    FakeAnthropic,
    FakeLLM,
    FakeOpenAI,
    Kind,
    LLMResponse,
    RecordedRequest,
    Reply,
    Responder,
    ToolCall,
    ToolCalls,
    ToolResult,
    last_user_text,
)

__all__ = [
    "Echo",
    "Error",
    "FakeAnthropic",
    "FakeExplorers",
    "FakeLLM",
    "FakeOpenAI",
    "Kind",
    "LLMResponse",
    "NotVerified",
    "RateLimited",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ServerError",
    "ToolCall",
    "ToolCalls",
    "ToolResult",
    "Verified",
    "last_user_text",
]
