"""The token cache keeps a caller no longer than its token's `exp` (Caller.expires_at)."""

from __future__ import annotations

import time

from kit.rpc.identity import Caller, TokenVerifier
from kit.rpc.token_cache import CachingTokenVerifier


class Fixed(TokenVerifier):
    """Accepts every token as one caller whose token expires at `expires_at`."""

    def __init__(self, expires_at: float) -> None:
        self.expires_at = expires_at
        self.calls = 0

    async def verify(self, token: str) -> Caller:
        self.calls += 1
        return Caller(user_id="u", shard=0, expires_at=self.expires_at)


async def test_a_caller_is_cached_until_its_token_expires() -> None:
    live = Fixed(time.time() + 3600)
    cache = CachingTokenVerifier(live)
    await cache.verify("t")
    await cache.verify("t")
    assert live.calls == 1

    # Expired by the clock (still within the verifier's leeway): checked again every time.
    lapsed = Fixed(time.time() - 1)
    cache = CachingTokenVerifier(lapsed)
    await cache.verify("t")
    await cache.verify("t")
    assert lapsed.calls == 2
