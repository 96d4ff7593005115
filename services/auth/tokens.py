"""Access tokens (signed JWTs) and refresh tokens (opaque random strings, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

from services.auth.keys import Keyring


@dataclass(frozen=True)
class AccessTokenIssuer:
    keyring: Keyring
    issuer: str
    audience: str
    ttl_s: int

    def issue(self, user_id: str, shard: int, session_id: str = "") -> str:
        """An access token; `session_id` (claim `sid`) lets a logout end it early."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
            "jti": str(uuid.uuid4()),
            "shard": shard,
        }
        if session_id:
            claims["sid"] = session_id
        signer = self.keyring.signer
        return jwt.encode(
            claims, signer.private_key, algorithm="EdDSA", headers={"kid": signer.kid}
        )


def new_refresh_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    # A fast hash is right here: the token is random and long, so there is nothing to brute
    # force; the database never holds a usable token.
    return hashlib.sha256(token.encode()).digest()
