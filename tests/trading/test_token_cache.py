"""The token cache every non-Auth service verifies through: one signature check per token, never a cached failure, and a
cached token stops being honoured when its entry's time is up."""

from __future__ import annotations

import pytest

from kit.rpc.auth_keys import auth_service_verifier
from kit.rpc.errors import ServiceError
from kit.rpc.identity import Caller, TokenVerifier
from kit.rpc.token_cache import CachingTokenVerifier
from tests.trading.conftest import AuthHandle


class Counting(TokenVerifier):
    """The real verifier, counting the tokens it is asked to check."""

    def __init__(self, inner: TokenVerifier) -> None:
        self.inner = inner
        self.calls = 0

    async def verify(self, token: str) -> Caller:
        self.calls += 1
        return await self.inner.verify(token)


async def test_a_verified_token_is_checked_once(auth: AuthHandle) -> None:
    inner = Counting(auth_service_verifier(auth.settings))
    cache = CachingTokenVerifier(inner)
    token = auth.token("cache-user", shard=3)
    first = await cache.verify(token)
    second = await cache.verify(token)
    assert first == second
    assert (first.user_id, first.shard) == ("cache-user", 3)
    assert inner.calls == 1
    other = await cache.verify(auth.token("cache-other"))
    assert other.user_id == "cache-other"
    assert inner.calls == 2


async def test_bad_tokens_are_never_cached(auth: AuthHandle) -> None:
    inner = Counting(auth_service_verifier(auth.settings))
    cache = CachingTokenVerifier(inner)
    token = auth.token("cache-forger")
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(ServiceError) as failure:
            await cache.verify(forged)
        assert failure.value.code.name == "UNAUTHENTICATED"
    assert inner.calls == 2


async def test_entries_expire_and_the_cache_is_bounded(auth: AuthHandle) -> None:
    inner = Counting(auth_service_verifier(auth.settings))
    stale = CachingTokenVerifier(inner, max_age_s=0.0)
    token = auth.token("cache-stale")
    await stale.verify(token)
    await stale.verify(token)
    assert inner.calls == 2  # no entry outlives its time

    small = CachingTokenVerifier(inner, max_entries=2)
    tokens = [auth.token(f"cache-bounded-{n}") for n in range(3)]
    for token in tokens:
        await small.verify(token)
    calls = inner.calls
    await small.verify(tokens[2])
    await small.verify(tokens[1])
    assert inner.calls == calls  # the newest two are kept
    await small.verify(tokens[0])
    assert inner.calls == calls + 1  # the oldest was dropped
