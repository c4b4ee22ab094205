"""Session resources: create, list, read, rename, delete."""

from __future__ import annotations

import re

from fastapi import APIRouter, Query, Request, Response

from chatbot.api.params import (
    AUTHENTICATED,
    PATH_SESSION_ID,
    manager_of,
    principal_of,
    required_session_id,
    scope_of,
    sessions_of,
)
from chatbot.api.responses import JsonResponse, session_response
from chatbot.api.schemas import (
    MessagePageResponse,
    RenameRequest,
    SessionCreated,
    SessionListResponse,
    WebStateResponse,
    errors_doc,
)
from chatbot.errors import AuthMethodDisabled, InvalidCursor
from chatbot.model import public_id, scoped
from chatbot.store.base import Store

router = APIRouter(prefix="/api/sessions", tags=["sessions"], dependencies=AUTHENTICATED)

_CURSOR = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)~([A-Za-z0-9_-]{1,128})"
)
CURSOR_DOC = Query(
    default=None,
    description="`next_cursor` of the previous page: `LAST_ACTIVE_AT~SESSION_ID`.",
    json_schema_extra={"pattern": f"^{_CURSOR.pattern}$"},
)


@router.post(
    "",
    status_code=201,
    summary="Create a session",
    responses={201: {"model": SessionCreated}, **errors_doc(401, 429, 503)},
)
async def create_session(request: Request) -> JsonResponse:
    """A new, empty session with a server-made UUIDv4 id."""
    manager_of(request).check_writable()
    state = await sessions_of(request).run(
        None, "state", {}, create=True, scope=await scope_of(request)
    )
    session_id = state["session_id"]
    return JsonResponse(
        {"session_id": session_id}, status_code=201, headers={"X-Session-Id": session_id}
    )


@router.get(
    "",
    summary="List my conversations",
    responses={200: {"model": SessionListResponse}, **errors_doc(400, 401, 404, 422, 503)},
)
async def list_sessions(
    request: Request,
    cursor: str | None = CURSOR_DOC,
    limit: int = Query(default=50, ge=1, le=200),
) -> JsonResponse:
    """The caller's sessions, most recently active first, a page at a time.

    Needs sign-in: under AUTH=none a session id is its own key and nobody owns sessions.
    """
    if await principal_of(request) is None:
        raise AuthMethodDisabled(
            "Conversations are listed per signed-in user; this server runs with AUTH=none."
        )
    store: Store = manager_of(request).store
    scope = await scope_of(request)
    summaries = await store.owned(scope, _decode(cursor, scope), limit + 1)
    page = summaries[:limit]
    running = await sessions_of(request).processing([summary.id for summary in page])
    next_cursor = None
    if len(summaries) > limit:
        last = page[-1]
        next_cursor = _encode(last.last_active_at, public_id(last.id))
    return JsonResponse(
        {
            "sessions": [
                {
                    "session_id": public_id(summary.id),
                    "title": summary.title,
                    "created_at": summary.created_at,
                    "last_active_at": summary.last_active_at,
                    "message_count": summary.message_count,
                    "is_processing": summary.id in running,
                }
                for summary in page
            ],
            "next_cursor": next_cursor,
        }
    )


def _encode(last_active_at: str, session_id: str) -> str:
    return f"{last_active_at}~{session_id}"


def _decode(cursor: str | None, scope: str) -> tuple[str, str] | None:
    """The `(last_active_at, key)` to list after; the cursor names the caller's own ids."""
    if cursor is None:
        return None
    found = _CURSOR.fullmatch(cursor)
    if found is None:
        raise InvalidCursor("cursor is not a next_cursor this server gave.")
    return found[1], scoped(found[2], scope)


@router.get(
    "/{session_id}",
    summary="A session's full state",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 401, 404, 503)},
)
async def get_session(request: Request, session_id: str = PATH_SESSION_ID) -> JsonResponse:
    """The same state as `GET /api/state`; 404 for an unknown id."""
    session_id = await required_session_id(request, session_id)
    return session_response(await sessions_of(request).run(session_id, "state", {}, create=False))


@router.patch(
    "/{session_id}",
    summary="Rename a session",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 401, 404, 422, 503)},
)
async def rename_session(
    body: RenameRequest, request: Request, session_id: str = PATH_SESSION_ID
) -> JsonResponse:
    """Set the conversation's title (shown in the list and in `state` events)."""
    manager_of(request).check_writable()
    session_id = await required_session_id(request, session_id)
    args = {"title": " ".join(body.title.split())}
    return session_response(
        await sessions_of(request).run(session_id, "rename", args, create=False)
    )


@router.delete(
    "/{session_id}",
    status_code=204,
    summary="Delete a session",
    responses={204: {"description": "Deleted"}, **errors_doc(400, 401, 404, 503)},
)
async def delete_session(request: Request, session_id: str = PATH_SESSION_ID) -> Response:
    """Cancel its turn, end its streams with `session.closed`, and forget it."""
    session_id = await required_session_id(request, session_id)
    await sessions_of(request).run(session_id, "delete", {}, create=False)
    return Response(status_code=204)


@router.get(
    "/{session_id}/messages",
    summary="Page through a session's history",
    responses={200: {"model": MessagePageResponse}, **errors_doc(400, 401, 404, 422, 503)},
)
async def messages(
    request: Request,
    session_id: str = PATH_SESSION_ID,
    before: str | None = Query(default=None, max_length=64, description="A message id."),
    limit: int = Query(default=50, ge=1, le=500),
) -> JsonResponse:
    """Messages older than `before` (or the newest), oldest first; `has_more` says if older exist.

    The state and snapshot carry only the newest SNAPSHOT_MESSAGES; this reaches the rest.
    """
    session_id = await required_session_id(request, session_id)
    args = {"before": before, "limit": limit}
    return JsonResponse(await sessions_of(request).run(session_id, "page", args, create=False))
