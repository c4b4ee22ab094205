"""Signing in and out: anonymous tokens, Sign-In with Ethereum, who am I, logout.

Each sign-in answers the token in the body and sets it as the `chatbot_token` cookie
(HttpOnly, SameSite=Lax), so a browser needs no script to hold it. The routes that
issue anything are counted per client address (RATE_LIMIT_AUTH).
"""

from __future__ import annotations

import secrets

import httpx2
from fastapi import APIRouter, Request, Response

from chatbot.api.params import address_of, manager_of, sessions_of, settings_of
from chatbot.api.responses import JsonResponse
from chatbot.api.schemas import (
    MeResponse,
    SiweNonceResponse,
    SiweRequest,
    TokenResponse,
    errors_doc,
)
from chatbot.auth.ledger import Ledger
from chatbot.auth.principals import COOKIE, Authenticator, Principal
from chatbot.auth.siwe import SiweError, verify
from chatbot.auth.tokens import Issued, Tokens
from chatbot.config import AuthMethod
from chatbot.errors import AuthMethodDisabled, BackendUnavailable, SignInRefused, Unauthorized
from chatbot.limiter import Limiter
from chatbot.model import iso_in, iso_utc, scope_of
from chatbot.sessions.service import claim

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


async def _issuing(request: Request, method: AuthMethod) -> Tokens:
    """This server's token maker, once the caller's address is within RATE_LIMIT_AUTH."""
    limiter: Limiter = request.app.state.limiter
    await limiter.sign_in(address_of(request))
    authenticator = _authenticator(request)
    if method not in authenticator.methods or authenticator.tokens is None:
        raise AuthMethodDisabled(f"Sign-in with {method.value} is not enabled on this server.")
    return authenticator.tokens


def _signed_in(request: Request, issued: Issued, status: int, moved: int = 0) -> JsonResponse:
    body = {
        "token": issued.token,
        "principal": issued.principal,
        "expires_at": issued.expires_at,
        "moved_sessions": moved,
    }
    response = JsonResponse(body, status)
    response.set_cookie(
        COOKIE,
        issued.token,
        max_age=issued.seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def _domain(request: Request) -> str:
    """The authority a SIWE message must name: SIWE_DOMAIN, else this request's Host."""
    return settings_of(request).siwe_domain or request.headers.get("host", "localhost")


async def _current(request: Request) -> Principal | None:
    """Whoever the request's credential names, if it is still good (sign-in replaces it)."""
    try:
        return await _authenticator(request).identify(request)
    except Unauthorized:
        return None


@router.post(
    "/anonymous",
    status_code=201,
    summary="Get an anonymous principal",
    responses={201: {"model": TokenResponse}, **errors_doc(404, 429, 503)},
)
async def anonymous(request: Request) -> JsonResponse:
    """A fresh `anon:` principal; its sessions move to the address it later signs in as."""
    tokens = await _issuing(request, AuthMethod.ANONYMOUS)
    return _signed_in(request, tokens.issue(f"anon:{secrets.token_urlsafe(16)}"), 201)


@router.post(
    "/siwe/nonce",
    summary="Start Sign-In with Ethereum",
    responses={200: {"model": SiweNonceResponse}, **errors_doc(404, 429, 503)},
)
async def siwe_nonce(request: Request) -> JsonResponse:
    """A single-use nonce (valid SIWE_NONCE_TTL_SECONDS) and what the message must say."""
    await _issuing(request, AuthMethod.SIWE)
    settings = settings_of(request)
    ledger: Ledger = request.app.state.ledger
    nonce = secrets.token_hex(16)
    await ledger.add(f"nonce:{nonce}", settings.siwe_nonce_ttl_seconds)
    domain = _domain(request)
    return JsonResponse(
        {
            "nonce": nonce,
            "domain": domain,
            "uri": f"{request.url.scheme}://{domain}",
            "chain_id": settings.networks[settings.initial_network].chain_id,
            "expires_at": iso_in(settings.siwe_nonce_ttl_seconds),
        }
    )


@router.post(
    "/siwe",
    summary="Sign in with Ethereum (EIP-4361)",
    responses={200: {"model": TokenResponse}, **errors_doc(400, 401, 404, 422, 429, 503)},
)
async def siwe(body: SiweRequest, request: Request) -> JsonResponse:
    """Check the signed message (EOA or EIP-1271 contract wallet) and sign in as `eth:0x…`.

    401 with a code per failed check: `siwe_invalid_message`, `siwe_domain`, `siwe_uri`,
    `siwe_chain`, `siwe_expired`, `siwe_not_yet_valid`, `siwe_signature`, `siwe_nonce`.
    From an anonymous browser, its sessions move to the address (`moved_sessions`).
    """
    tokens = await _issuing(request, AuthMethod.SIWE)
    settings = settings_of(request)
    http: httpx2.AsyncClient = request.app.state.http
    try:
        message = await verify(
            body.message,
            body.signature,
            domain=_domain(request),
            rpc_urls={network.chain_id: network.rpc_url for network in settings.networks.values()},
            http=http,
        )
    except SiweError as error:
        if error.code == "siwe_unverifiable":
            raise BackendUnavailable(error.message, retry_after=5) from None
        raise SignInRefused(error.code, error.message) from None
    ledger: Ledger = request.app.state.ledger
    if not await ledger.take(f"nonce:{message.nonce}"):
        raise SignInRefused(
            "siwe_nonce", "The nonce is unknown, already used or expired; ask for a new one."
        )
    principal = f"eth:{message.address}"
    moved = 0
    previous = await _current(request)
    if previous is not None and previous.anonymous:
        store = manager_of(request).store
        moved = len(await claim(sessions_of(request), store, previous.scope, scope_of(principal)))
        if previous.claims is not None:
            await tokens.revoke(previous.claims)
    return _signed_in(request, tokens.issue(principal), 200, moved)


@router.get(
    "/me",
    summary="Who am I",
    responses={200: {"model": MeResponse}, **errors_doc(503)},
)
async def me(request: Request) -> JsonResponse:
    """The principal the request's credentials name (null when none or not valid)."""
    authenticator = _authenticator(request)
    principal = await _current(request) if authenticator.required else None
    claims = principal.claims if principal is not None else None
    return JsonResponse(
        {
            "principal": principal.id if principal is not None else None,
            "methods": sorted(method.value for method in authenticator.methods),
            "expires_at": iso_utc(claims.expires) if claims is not None else None,
        }
    )


@router.post(
    "/logout",
    status_code=204,
    summary="Sign out",
    responses={204: {"description": "Signed out"}, **errors_doc(503)},
)
async def logout(request: Request) -> Response:
    """Revoke this server's token on every worker and clear the cookie."""
    principal = await _current(request)
    tokens = _authenticator(request).tokens
    if principal is not None and principal.claims is not None and tokens is not None:
        await tokens.revoke(principal.claims)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, httponly=True, samesite="lax")
    return response
