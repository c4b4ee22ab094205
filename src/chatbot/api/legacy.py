"""The original app's endpoints, kept wire-compatible; the SSE one lives in stream.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from chatbot.api.errors import chatbot_error_response
from chatbot.api.params import (
    AUTHENTICATED,
    QUERY_SESSION_ID,
    count_message,
    manager_of,
    message_text,
    required_session_id,
    scope_of,
    session_id_of,
    sessions_of,
    settings_of,
    signer_of,
)
from chatbot.api.responses import JsonResponse, session_response
from chatbot.api.schemas import (
    ChatRequest,
    InterruptRequest,
    McpCommandRequest,
    McpCommandResponse,
    SystemRequest,
    WebStateResponse,
    errors_doc,
)
from chatbot.errors import ChatbotError, SessionNotFound
from chatbot.model import new_session_id
from chatbot.sessions.commands import parse_command
from chatbot.sessions.service import run_command

router = APIRouter(tags=["original API"])


@router.get("/health", response_class=PlainTextResponse, summary="Liveness")
async def health() -> str:
    """`OK` while the process serves requests."""
    return "OK"


@router.post(
    "/api/chat",
    dependencies=AUTHENTICATED,
    summary="Send a user message",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 401, 409, 413, 422, 429, 503)},
)
async def chat(body: ChatRequest, request: Request) -> JsonResponse:
    """Add the message and start the turn that answers it; returns the state at once.

    While a turn runs, `BUSY_POLICY` decides: 409 `session_busy` (reject), queue it, or
    interrupt the running turn. Without any session id a new session is created and
    its id returned in the body and the `X-Session-Id` header.
    """
    text = message_text(request, body.message)
    manager_of(request).check_available()
    session_id = await session_id_of(request, body.session_id)
    await count_message(request, session_id)
    args = {"text": text, "signer": await signer_of(request)}
    state = await sessions_of(request).run(
        session_id, "chat", args, create=True, scope=await scope_of(request)
    )
    return session_response(state)


@router.get(
    "/api/state",
    dependencies=AUTHENTICATED,
    summary="A session's full state",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 401, 404, 503)},
)
async def state(request: Request, session_id: str | None = QUERY_SESSION_ID) -> JsonResponse:
    """The session's state; 404 for an unknown id (reads never create sessions)."""
    session_id = await required_session_id(request, session_id)
    return session_response(await sessions_of(request).run(session_id, "state", {}, create=False))


@router.post(
    "/api/interrupt",
    dependencies=AUTHENTICATED,
    summary="Stop the running turn",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 401, 404, 503)},
)
async def interrupt(request: Request, body: InterruptRequest | None = None) -> JsonResponse:
    """Cancel the turn and return once it has ended (partial reply kept, marked interrupted).

    Harmless when nothing runs. Never creates a session: an unknown id is 404.
    """
    given = body.session_id if body is not None else request.query_params.get("session_id")
    session_id = await required_session_id(request, given)
    state = await sessions_of(request).run(session_id, "interrupt", {}, create=False)
    return session_response(state)


@router.post(
    "/api/system",
    dependencies=AUTHENTICATED,
    summary="Add a system note",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 401, 413, 422, 429, 503)},
)
async def system(body: SystemRequest, request: Request) -> JsonResponse:
    """Show a system message at once; when the session is idle it starts a turn."""
    text = message_text(request, body.message)
    manager_of(request).check_available()
    session_id = await session_id_of(request, body.session_id)
    await count_message(request, session_id)
    args = {"text": text, "signer": await signer_of(request)}
    state = await sessions_of(request).run(
        session_id, "system", args, create=True, scope=await scope_of(request)
    )
    return session_response(state)


@router.post(
    "/api/mcp-command",
    dependencies=AUTHENTICATED,
    summary="Run a session command (set_network, …)",
    responses={200: {"model": McpCommandResponse}, **errors_doc(400, 401, 422, 429, 503)},
)
async def mcp_command(body: McpCommandRequest, request: Request) -> JsonResponse:
    """Apply a command to this session only; unknown commands or networks give 400."""
    try:
        parse_command(body.command, body.args, settings_of(request))  # bad input: 400 here
    except ChatbotError as error:
        extra = {"success": False, "message": error.message, "data": None}
        return chatbot_error_response(error, extra)
    manager_of(request).check_writable()
    session_id = await session_id_of(request, body.session_id)
    args = {"command": body.command, "args": body.args}
    sessions = sessions_of(request)
    scope = await scope_of(request)
    if body.command == "set_network":
        answer = await sessions.run(session_id, "command", args, create=True, scope=scope)
    else:
        # A question about networks makes no session: a fresh tab asks before it chats.
        try:
            if session_id is None:
                raise SessionNotFound("no session named")
            answer = await sessions.run(session_id, "command", args, create=False)
        except SessionNotFound:
            placeholder = manager_of(request).placeholder(session_id or new_session_id())
            answer = await run_command(placeholder, args)
    return JsonResponse(answer, headers={"X-Session-Id": answer["session_id"]})
