"""A cache in front of the access-token verifier.

Checking an Ed25519 signature and the claims costs more than a trading command, and a client
sends the same token with every call until it refreshes it. A verified token's claims never
change, so a service remembers the caller per token until the token expires (or for
MAX_AGE_S at most, so a key withdrawn from the JWKS stops being honoured soon after). Only
successes are cached: a bad token is judged afresh every time.
"""

from __future__ import annotations

import time

from kit.rpc.identity import Caller, TokenVerifier

MAX_AGE_S = 60.0
MAX_ENTRIES = 100_000


class CachingTokenVerifier(TokenVerifier):
    def __init__(
        self, inner: TokenVerifier, *, max_age_s: float = MAX_AGE_S, max_entries: int = MAX_ENTRIES
    ) -> None:
        # Delegates instead of calling super().__init__: everything but the cache is `inner`'s.
        self._inner = inner
        self._max_age_s = max_age_s
        self._max_entries = max_entries
        self._callers: dict[str, tuple[Caller, float]] = {}  # token -> (caller, valid until)

    async def verify(self, token: str) -> Caller:
        now = time.time()
        hit = self._callers.get(token)
        if hit is not None:
            caller, until = hit
            if now < until:
                return caller
            del self._callers[token]
        caller = await self._inner.verify(token)  # raises for anything not valid
        if len(self._callers) >= self._max_entries:
            self._callers.pop(next(iter(self._callers)))  # the oldest entry
        self._callers[token] = (caller, min(caller.expires_at, now + self._max_age_s))
        return caller
