"""Turning a request into validated inputs: which session, which text."""

from __future__ import annotations

from fastapi import Path, Query, Request

from chatbot.api.schemas import SESSION_ID_SCHEMA
from chatbot.config import Settings
from chatbot.errors import (
    EmptyMessage,
    InvalidInput,
    InvalidSessionId,
    MessageTooLong,
    MissingSessionId,
)
from chatbot.limiter import Limiter
from chatbot.model import is_valid_session_id
from chatbot.sessions.manager import SessionManager
from chatbot.sessions.service import Sessions

PATH_SESSION_ID = Path(description="The session's id.", json_schema_extra=SESSION_ID_SCHEMA)
"""A session id in the path, documented with its pattern."""
QUERY_SESSION_ID = Query(
    default=None,
    description="The session's id (or the `X-Session-Id` header).",
    json_schema_extra=SESSION_ID_SCHEMA,
)
"""A session id in the query, documented with its pattern."""


def manager_of(request: Request) -> SessionManager:
    """The process's session registry."""
    manager: SessionManager = request.app.state.manager
    return manager


def sessions_of(request: Request) -> Sessions:
    """Where session operations run: here, or on the cluster worker holding the session."""
    sessions: Sessions = request.app.state.sessions
    return sessions


def settings_of(request: Request) -> Settings:
    """The process's settings."""
    settings: Settings = request.app.state.settings
    return settings


def session_id_of(request: Request, given: str | None) -> str | None:
    """The id from the body or query, else the `X-Session-Id` header, else DEFAULT_SESSION_ID."""
    session_id = given if given is not None else request.headers.get("x-session-id")
    if session_id is None:
        return settings_of(request).default_session_id
    if not is_valid_session_id(session_id):
        raise InvalidSessionId("session_id must be 1-128 characters of [A-Za-z0-9_-].")
    return session_id


def required_session_id(request: Request, given: str | None) -> str:
    """Like `session_id_of`, for reads, which cannot make up a session."""
    session_id = session_id_of(request, given)
    if session_id is None:
        raise MissingSessionId("Give session_id (query, body or X-Session-Id header).")
    return session_id


async def count_message(request: Request) -> None:
    """Spend one of the client's messages (RATE_LIMIT_MESSAGES), or refuse with 429."""
    limiter: Limiter = request.app.state.limiter
    await limiter.message(principal_of(request))


def principal_of(request: Request) -> str:
    """Who is asking: until sign-in exists, the client's address."""
    return f"ip:{request.client.host}" if request.client is not None else "ip:unknown"


def message_text(request: Request, text: str) -> str:
    """The message, checked against emptiness and MAX_MESSAGE_LENGTH."""
    if not text.strip():
        raise EmptyMessage("The message is empty.")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("The message contains invalid Unicode (a lone surrogate).") from None
    limit = settings_of(request).max_message_length
    if len(text) > limit:
        raise MessageTooLong(f"The message is longer than {limit} characters.")
    return text
