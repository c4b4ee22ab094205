"""Session resources: create, read, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from chatbot.api.params import manager_of, required_session_id
from chatbot.api.responses import JsonResponse, session_response
from chatbot.api.schemas import SessionCreated, WebStateResponse, errors_doc

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


@router.post(
    "",
    status_code=201,
    summary="Create a session",
    responses={201: {"model": SessionCreated}, **errors_doc(503)},
)
async def create_session(request: Request) -> JsonResponse:
    """A new, empty session with a server-made UUIDv4 id."""
    session = await manager_of(request).create()
    return JsonResponse(
        {"session_id": session.id}, status_code=201, headers={"X-Session-Id": session.id}
    )


@router.get(
    "/{session_id}",
    summary="A session's full state",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 404)},
)
async def get_session(session_id: str, request: Request) -> JsonResponse:
    """The same state as `GET /api/state`; 404 for an unknown id."""
    session = manager_of(request).require(required_session_id(request, session_id))
    return session_response(session.state())


@router.delete(
    "/{session_id}",
    status_code=204,
    summary="Delete a session",
    responses={204: {"description": "Deleted"}, **errors_doc(400, 404)},
)
async def delete_session(session_id: str, request: Request) -> Response:
    """Cancel its turn, end its streams with `session.closed`, and forget it."""
    await manager_of(request).remove(required_session_id(request, session_id))
    return Response(status_code=204)
