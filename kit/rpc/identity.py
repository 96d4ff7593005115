"""Who is calling: access-token verification and the caller of the current request.

Every service verifies access tokens itself (the edge verifies them too), with the Auth
service's public keys: Auth reads its own keyring, the others fetch its JWKS over gRPC and
refetch it when a token names a key id they have not seen (key rotation).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from jwt.algorithms import OKPAlgorithm

from kit.rpc.errors import unauthenticated, unavailable

log = logging.getLogger(__name__)

# Only EdDSA is accepted: pinning the algorithm rules out `alg: none` and HS256-with-public-key.
ACCEPTED_ALGORITHMS = ["EdDSA"]
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]


@dataclass(frozen=True)
class Caller:
    """An authenticated user, as the access token says."""

    user_id: str
    shard: int
    # The token's `exp` (Unix seconds): how long a cache may keep honouring it.
    expires_at: float
    # The login it belongs to (claim `sid`), which a logout revokes; "" for tokens without one.
    session_id: str = ""


_current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "current_caller", default=None
)


def current_caller() -> Caller:
    """The user of the request being handled; only on methods that require a token."""
    caller = _current_caller.get()
    if caller is None:
        raise unauthenticated("this method needs an access token")
    return caller


def set_current_caller(caller: Caller | None) -> contextvars.Token[Caller | None]:
    return _current_caller.set(caller)


def reset_current_caller(token: contextvars.Token[Caller | None]) -> None:
    _current_caller.reset(token)


class KeySource(Protocol):
    async def public_key(self, kid: str) -> Any | None:
        """The verification key for `kid`, or None when no such key is known."""


class StaticKeySource:
    def __init__(self, keys: Mapping[str, Any]) -> None:
        self._keys = dict(keys)

    async def public_key(self, kid: str) -> Any | None:
        return self._keys.get(kid)


class JwksKeySource:
    """Public keys from a JWKS document, refetched (at most every `min_refresh_s`) when a token
    names an unknown key id. When that refetch fails (Auth unreachable, e.g. while it restarts)
    the key is not known to be unknown: the call fails UNAVAILABLE (AUTH_UNAVAILABLE), so the
    client retries instead of discarding a valid token."""

    def __init__(
        self, fetch_jwks: Callable[[], Awaitable[bytes]], min_refresh_s: float = 5.0
    ) -> None:
        self._fetch = fetch_jwks
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._min_refresh_s = min_refresh_s
        self._lock = asyncio.Lock()

    async def public_key(self, kid: str) -> Any | None:
        if kid not in self._keys:
            failure = await self._refresh()
            if failure is not None and kid not in self._keys:
                raise unavailable(
                    "AUTH_UNAVAILABLE",
                    "the token's signing keys cannot be fetched from Auth now; retry shortly",
                ) from failure
        return self._keys.get(kid)

    async def _refresh(self) -> Exception | None:
        """Refetches the keys unless that was done moments ago; the fetch's error, if any
        (the keys we had are kept)."""
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._min_refresh_s and self._keys:
                return None
            try:
                self._keys = parse_jwks(await self._fetch())
                self._fetched_at = time.monotonic()
            except Exception as exc:
                log.warning("could not fetch the JWKS: %s", exc)
                return exc
            return None


def parse_jwks(document: bytes) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for entry in json.loads(document).get("keys", []):
        if entry.get("kty") == "OKP" and entry.get("crv") == "Ed25519" and "kid" in entry:
            keys[entry["kid"]] = OKPAlgorithm.from_jwk(entry)
    return keys


class TokenVerifier:
    def __init__(self, keys: KeySource, issuer: str, audience: str, leeway_s: int = 5) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s

    async def verify(self, token: str) -> Caller:
        """The caller named by a valid access token; UNAUTHENTICATED for anything else."""
        if len(token) > 4096:
            raise unauthenticated("access token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthenticated("access token is malformed") from exc
        if header.get("alg") not in ACCEPTED_ALGORITHMS:
            raise unauthenticated("access token uses an unaccepted algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise unauthenticated("access token has no key id")
        key = await self._keys.public_key(kid)
        if key is None:
            raise unauthenticated("access token is signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ACCEPTED_ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthenticated("access token has expired") from exc
        except jwt.PyJWTError as exc:
            raise unauthenticated(f"access token is invalid: {exc}") from exc
        shard = claims.get("shard", 0)
        if not isinstance(shard, int):
            raise unauthenticated("access token has an invalid shard claim")
        session_id = claims.get("sid", "")
        if not isinstance(session_id, str):
            raise unauthenticated("access token has an invalid sid claim")
        return Caller(
            user_id=str(claims["sub"]),
            shard=shard,
            expires_at=float(claims["exp"]),
            session_id=session_id,
        )


def bearer_token(metadata: Mapping[str, str]) -> str | None:
    value = metadata.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated('authorization metadata must be "Bearer <access token>"')
    return token.strip()
