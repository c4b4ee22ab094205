"""Who is asking: the principal a request's credentials name, under the AUTH methods.

Credentials come as `Authorization: Bearer …` or the `chatbot_token` cookie. The
principal is `anon:…`, `eth:0x…`, `key:NAME` or `jwt:SUB`; with AUTH=none nobody signs
in and the client's address stands in for limits.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from chatbot.auth.credentials import ApiKeys, OperatorJwts
from chatbot.auth.ledger import Ledger
from chatbot.auth.tokens import Claims, Tokens
from chatbot.config import AuthMethod, Settings
from chatbot.errors import Unauthorized
from chatbot.model import scope_of

log = logging.getLogger("chatbot.auth")

COOKIE = "chatbot_token"


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in caller; `claims` when the credential was this server's own token."""

    id: str
    claims: Claims | None = None

    @property
    def scope(self) -> str:
        """The scope its sessions are keyed under (model/ids.py)."""
        return scope_of(self.id)

    @property
    def anonymous(self) -> bool:
        """True for an `anon:` principal, whose sessions move to the address it signs in as."""
        return self.id.startswith("anon:")


class Authenticator:
    """Turns a request's credential into a principal, by the methods AUTH accepts."""

    def __init__(self, settings: Settings, ledger: Ledger) -> None:
        methods = settings.auth
        self.methods = methods
        self.required = settings.requires_credentials
        self.tokens: Tokens | None = None
        if methods & {AuthMethod.ANONYMOUS, AuthMethod.SIWE}:
            if settings.auth_secret is not None:
                secret = settings.auth_secret.get_secret_value().encode()
            else:
                # One process only (a cluster refuses to start without it): tokens end
                # with the process, which is what a try-out on one machine wants.
                secret = secrets.token_bytes(32)
                log.warning("AUTH_SECRET is not set: sign-ins last until this process stops")
            self.tokens = Tokens(secret, settings.auth_token_ttl_seconds, ledger)
        self.api_keys = ApiKeys(settings.api_key_table()) if AuthMethod.APIKEY in methods else None
        self.jwts = OperatorJwts(settings) if AuthMethod.JWT in methods else None

    @staticmethod
    def credential(connection: HTTPConnection) -> str | None:
        """The bearer token of the request, else its cookie."""
        header = connection.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthorized("Authorization must be `Bearer <token>`.")
        return connection.cookies.get(COOKIE) or None

    async def identify(self, connection: HTTPConnection) -> Principal | None:
        """The principal of the request's credential, None without one; 401 for a bad one."""
        token = self.credential(connection)
        if token is None:
            return None
        if self.api_keys is not None and (name := self.api_keys.principal(token)) is not None:
            return Principal(name)
        if self.tokens is not None and Tokens.is_ours(token):
            claims = await self.tokens.check(token)
            if claims is None:
                raise Unauthorized("The token is expired, revoked or not valid; sign in again.")
            return Principal(claims.principal, claims)
        if self.jwts is not None and (subject := self.jwts.principal(token)) is not None:
            return Principal(subject)
        raise Unauthorized("The credentials are not valid; sign in again.")
