"""The wallet's answer to a pending transaction."""

from __future__ import annotations

from fastapi import APIRouter, Request

from chatbot.api.params import AUTHENTICATED, manager_of, required_session_id, sessions_of
from chatbot.api.responses import JsonResponse, session_response
from chatbot.api.schemas import WalletResultRequest, WebStateResponse, errors_doc

router = APIRouter(tags=["wallet"], dependencies=AUTHENTICATED)


@router.post(
    "/api/wallet/result",
    summary="Report what the wallet did with a pending transaction",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 401, 404, 409, 410, 422, 503)},
)
async def wallet_result(body: WalletResultRequest, request: Request) -> JsonResponse:
    """Resolve the session's pending transaction exactly once; the agent then continues.

    404: no such transaction (or session); 409: it was already resolved; 410: it expired.
    """
    manager = manager_of(request)
    manager.check_writable()
    session_id = await required_session_id(request, body.session_id)
    args = {"tx_id": body.tx_id, "status": body.status, "hash": body.hash, "error": body.error}
    state = await sessions_of(request).run(session_id, "wallet_result", args, create=False)
    return session_response(state)
