"""Turning a request into validated inputs: which session, which text."""

from __future__ import annotations

from fastapi import Depends, Path, Query, Request

from chatbot.api.schemas import SESSION_ID_SCHEMA
from chatbot.auth.principals import Authenticator, Principal
from chatbot.config import Settings
from chatbot.errors import (
    EmptyMessage,
    InvalidInput,
    InvalidSessionId,
    MessageTooLong,
    MissingSessionId,
    Unauthorized,
)
from chatbot.limiter import Limiter
from chatbot.model import is_valid_session_id, scoped
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


async def principal_of(request: Request) -> Principal | None:
    """The signed-in caller; None under AUTH=none; 401 when AUTH wants one and none came."""
    if "principal" in request.scope:
        found: Principal | None = request.scope["principal"]
        return found
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.identify(request) if authenticator.required else None
    if principal is None and authenticator.required:
        raise Unauthorized("Sign in first: send a bearer token or the chatbot_token cookie.")
    request.scope["principal"] = principal
    return principal


AUTHENTICATED = [Depends(principal_of)]
"""A route's dependency: with AUTH, no credentials is a 401 before the body is read."""


async def scope_of(request: Request) -> str:
    """The scope the caller's session ids live in ("" under AUTH=none)."""
    principal = await principal_of(request)
    return principal.scope if principal is not None else ""


def address_of(request: Request) -> str:
    """The client's address (behind a trusted proxy, the one X-Forwarded-For names)."""
    return f"ip:{request.client.host}" if request.client is not None else "ip:unknown"


async def limit_key(request: Request) -> str:
    """Whom the limits count: the principal, or the client's address under AUTH=none."""
    principal = await principal_of(request)
    return principal.id if principal is not None else address_of(request)


async def signer_of(request: Request) -> str | None:
    """The caller's Ethereum address when signed in with Ethereum (SIWE), else None."""
    principal = await principal_of(request)
    if principal is None or not principal.id.startswith("eth:"):
        return None
    return principal.id.removeprefix("eth:")


async def session_id_of(request: Request, given: str | None) -> str | None:
    """The caller's key of the session named in the body or query, else the `X-Session-Id`
    header, else DEFAULT_SESSION_ID; None when none is named.

    The key is scoped to the caller (model/ids.py): another principal's id finds nothing.
    """
    session_id = given if given is not None else request.headers.get("x-session-id")
    if session_id is None:
        session_id = settings_of(request).default_session_id
    elif not is_valid_session_id(session_id):
        raise InvalidSessionId("session_id must be 1-128 characters of [A-Za-z0-9_-].")
    scope = await scope_of(request)
    return None if session_id is None else scoped(session_id, scope)


async def required_session_id(request: Request, given: str | None) -> str:
    """Like `session_id_of`, for reads, which cannot make up a session."""
    session_id = await session_id_of(request, given)
    if session_id is None:
        raise MissingSessionId("Give session_id (query, body or X-Session-Id header).")
    return session_id


async def count_message(request: Request, session_id: str | None) -> None:
    """Spend one of the caller's messages (RATE_LIMIT_MESSAGES), and refuse a turn past
    MAX_TURNS_PER_PRINCIPAL; 429 either way, before anything changes."""
    limiter: Limiter = request.app.state.limiter
    await limiter.message(await limit_key(request))
    if session_id is not None and (await principal_of(request)) is not None:
        limiter.turn(await sessions_of(request).running_turns(session_id))


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
