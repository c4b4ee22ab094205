"""Credentials the operator hands out: API keys (API_KEYS) and its own login's JWTs."""

from __future__ import annotations

import hmac

import jwt

from chatbot.config import Settings


class ApiKeys:
    """`key:NAME` for a configured key, compared in constant time."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = [(name, key.encode()) for name, key in table.items()]

    def principal(self, presented: str) -> str | None:
        """The principal of the key, or None; every key is compared, whatever matches."""
        given = presented.encode()
        found: str | None = None
        for name, key in self.table:
            if hmac.compare_digest(given, key):
                found = name
        return None if found is None else f"key:{found}"


class OperatorJwts:
    """`jwt:SUB` for a token from the operator's own login (JWT_SECRET or JWT_PUBLIC_KEY).

    The algorithms follow the key: HS256 with a secret, RS256/ES256 with a public key,
    never both, so a public key can never be used as an HMAC secret.
    """

    def __init__(self, settings: Settings) -> None:
        self.key: str
        if settings.jwt_public_key is not None:
            self.key = settings.jwt_public_key.get_secret_value()
            self.algorithms = ["RS256", "ES256"]
        else:
            assert settings.jwt_secret is not None
            self.key = settings.jwt_secret.get_secret_value()
            self.algorithms = ["HS256"]
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer

    def principal(self, token: str) -> str | None:
        """The principal of a valid token (signature, expiry, audience, issuer), or None."""
        required = ["exp", "sub"]
        if self.audience is not None:
            required.append("aud")
        if self.issuer is not None:
            required.append("iss")
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": required, "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError:
            return None
        subject = claims.get("sub")
        return f"jwt:{subject}" if isinstance(subject, str) and subject else None
