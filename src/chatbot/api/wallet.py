"""The user's wallet: which account a session's client is connected to, and its answers
to pending transactions."""

from __future__ import annotations

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Request

from chatbot.api.params import (
    AUTHENTICATED,
    manager_of,
    required_session_id,
    scope_of,
    session_id_of,
    sessions_of,
    signer_of,
)
from chatbot.api.responses import JsonResponse, session_response
from chatbot.api.schemas import (
    WalletAccountRequest,
    WalletResultRequest,
    WebStateResponse,
    errors_doc,
)

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


@router.post(
    "/api/wallet/account",
    summary="Report the wallet the client is connected to",
    responses={200: {"model": WebStateResponse}, **errors_doc(400, 401, 422, 429, 503)},
)
async def wallet_account(body: WalletAccountRequest, request: Request) -> JsonResponse:
    """Remember the user's account and chain for this session; `address: null` forgets it.

    Tools that take an address default to it, and proposals are simulated from it. Signed
    in with Ethereum, the signed-in address stands in while no wallet is reported.
    """
    manager_of(request).check_writable()
    # Any case: the address comes from the wallet itself, not typed by a person.
    address = None if body.address is None else str(to_checksum_address(body.address))
    session_id = await session_id_of(request, body.session_id)
    args = {"address": address, "chain_id": body.chain_id, "signer": await signer_of(request)}
    state = await sessions_of(request).run(
        session_id, "wallet_account", args, create=True, scope=await scope_of(request)
    )
    return session_response(state)
