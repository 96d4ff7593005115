"""Following revoked sessions from PostgreSQL, and ending a stream's wait when its session is
revoked: the parts every service uses to act on a logout before the token expires."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import pytest
from psycopg_pool import AsyncConnectionPool

from kit.rpc.errors import ServiceError
from kit.rpc.revocations import RevokedSessions
from kit.rpc.stream_lifetime import StreamLifetime

_REVOKE = "INSERT INTO revoked_sessions (session_id, expires_at) VALUES (%s, now() + %s::interval)"


async def test_a_revocation_reaches_the_sessions_watchers_only(
    db_pool: AsyncConnectionPool,
) -> None:
    revoked, other = str(uuid.uuid4()), str(uuid.uuid4())
    sessions = RevokedSessions(db_pool)
    await sessions.refresh()
    heard: list[str] = []
    sessions.watch(revoked, lambda: heard.append(revoked))
    sessions.watch(other, lambda: heard.append(other))
    async with db_pool.connection() as conn:
        await conn.execute(_REVOKE, (revoked, "15 minutes"))
    await sessions.refresh()
    assert heard == [revoked]
    assert sessions.is_revoked(revoked)
    assert not sessions.is_revoked(other)
    await sessions.refresh()
    assert heard == [revoked]  # told once


async def test_a_revocation_committed_late_is_not_missed(db_pool: AsyncConnectionPool) -> None:
    """A transaction stamps revoked_at when it writes, and may commit after a later one."""
    early, late = str(uuid.uuid4()), str(uuid.uuid4())
    sessions = RevokedSessions(db_pool)
    async with db_pool.connection() as slow, slow.transaction():
        await slow.execute(_REVOKE, (early, "15 minutes"))
        async with db_pool.connection() as fast:
            await fast.execute(_REVOKE, (late, "15 minutes"))
        await sessions.refresh()  # sees `late` only
        assert sessions.is_revoked(late)
        assert not sessions.is_revoked(early)
    await sessions.refresh()
    assert sessions.is_revoked(early)


async def test_an_expired_revocation_is_forgotten(db_pool: AsyncConnectionPool) -> None:
    gone = str(uuid.uuid4())
    async with db_pool.connection() as conn:
        await conn.execute(_REVOKE, (gone, "-1 second"))
    sessions = RevokedSessions(db_pool)
    await sessions.refresh()
    assert not sessions.is_revoked(gone)


async def test_revoking_cuts_a_waiting_stream_short() -> None:
    lifetime = StreamLifetime(time.time() + 300)

    async def wait_for_next_item() -> None:
        async with lifetime.bound():
            await asyncio.sleep(60)

    waiting = asyncio.ensure_future(wait_for_next_item())
    await asyncio.sleep(0.05)
    lifetime.revoke()
    with pytest.raises(ServiceError) as ended:
        await asyncio.wait_for(waiting, 5)
    assert ended.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert ended.value.reason == "SESSION_REVOKED"
    with pytest.raises(ServiceError, match="logged out"):  # and every later wait at once
        async with lifetime.bound():
            await asyncio.sleep(60)


async def test_a_handlers_own_timeout_is_not_taken_for_the_tokens() -> None:
    async def wait_with_a_timeout_of_its_own() -> None:
        async with StreamLifetime(time.time() + 300).bound(), asyncio.timeout(0.01):
            await asyncio.sleep(1)

    with pytest.raises(TimeoutError):
        await wait_with_a_timeout_of_its_own()
