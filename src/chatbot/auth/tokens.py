"""The server's own bearer tokens: JWTs signed with AUTH_SECRET, which logout revokes.

A token names its principal (`sub`), a unique id (`jti`, what a revocation records) and
its expiry; PyJWT signs and checks them (HS256). Revocations last until the token would
have expired anyway, so the ledger stays as small as the tokens still alive.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from chatbot.auth.ledger import Ledger
from chatbot.model import iso_utc

ISSUER = "chatbot"
"""The `iss` of this server's tokens, which tells them from an operator's JWTs."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A fresh token and what it says."""

    token: str
    principal: str
    expires_at: str
    seconds: int


@dataclass(frozen=True, slots=True)
class Claims:
    """A checked token of this server."""

    principal: str
    token_id: str
    expires: float


class Tokens:
    """Makes, checks and revokes this server's tokens."""

    def __init__(self, secret: bytes, seconds: float, ledger: Ledger) -> None:
        self.secret = secret
        self.seconds = int(seconds)
        self.ledger = ledger

    def issue(self, principal: str) -> Issued:
        """A token for `principal`, valid for AUTH_TOKEN_TTL_SECONDS."""
        now = int(time.time())
        expires = now + self.seconds
        claims = {
            "iss": ISSUER,
            "sub": principal,
            "iat": now,
            "exp": expires,
            "jti": secrets.token_urlsafe(12),
        }
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        return Issued(token, principal, iso_utc(expires), self.seconds)

    @staticmethod
    def is_ours(token: str) -> bool:
        """True when the token says this server issued it (checked for real by `check`)."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return claims.get("iss") == ISSUER

    async def check(self, token: str) -> Claims | None:
        """The token's claims, or None when it is forged, expired or revoked."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except jwt.PyJWTError:
            return None
        token_id = str(claims["jti"])
        if await self.ledger.has(f"revoked:{token_id}"):
            return None
        return Claims(str(claims["sub"]), token_id, float(claims["exp"]))

    async def revoke(self, claims: Claims) -> None:
        """Refuse this token from now on, on every worker, until it would have expired."""
        remaining = claims.expires - time.time()
        if remaining > 0:
            await self.ledger.add(f"revoked:{claims.token_id}", remaining + 1)
