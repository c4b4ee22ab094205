"""Session resources: create, read, delete."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from chatbot.api.params import PATH_SESSION_ID, manager_of, required_session_id, sessions_of
from chatbot.api.responses import JsonResponse, session_response
from chatbot.api.schemas import MessagePageResponse, SessionCreated, WebStateResponse, errors_doc

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


@router.post(
    "",
    status_code=201,
    summary="Create a session",
    responses={201: {"model": SessionCreated}, **errors_doc(503)},
)
async def create_session(request: Request) -> JsonResponse:
    """A new, empty session with a server-made UUIDv4 id."""
    manager_of(request).check_writable()
    state = await sessions_of(request).run(None, "state", {}, create=True)
    session_id = state["session_id"]
    return JsonResponse(
        {"session_id": session_id}, status_code=201, headers={"X-Session-Id": session_id}
    )


@router.get(
    "/{session_id}",
    summary="A session's full state",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 404, 503)},
)
async def get_session(request: Request, session_id: str = PATH_SESSION_ID) -> JsonResponse:
    """The same state as `GET /api/state`; 404 for an unknown id."""
    session_id = required_session_id(request, session_id)
    return session_response(await sessions_of(request).run(session_id, "state", {}, create=False))


@router.delete(
    "/{session_id}",
    status_code=204,
    summary="Delete a session",
    responses={204: {"description": "Deleted"}, **errors_doc(400, 404, 503)},
)
async def delete_session(request: Request, session_id: str = PATH_SESSION_ID) -> Response:
    """Cancel its turn, end its streams with `session.closed`, and forget it."""
    session_id = required_session_id(request, session_id)
    await sessions_of(request).run(session_id, "delete", {}, create=False)
    return Response(status_code=204)


@router.get(
    "/{session_id}/messages",
    summary="Page through a session's history",
    responses={200: {"model": MessagePageResponse}, **errors_doc(400, 404, 422, 503)},
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
    session_id = required_session_id(request, session_id)
    args = {"before": before, "limit": limit}
    return JsonResponse(await sessions_of(request).run(session_id, "page", args, create=False))
