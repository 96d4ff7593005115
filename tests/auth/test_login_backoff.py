"""Failed logins back off per account, on the Auth port itself, with one answer for
registered and unknown emails, and the backoff survives an Auth restart."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from exness.auth.v1 import auth_pb2, auth_pb2_grpc
from exness_client import ExnessError
from psycopg_pool import AsyncConnectionPool

from kit.settings import Settings
from services.auth.main import build
from services.auth.throttle import LoginBackoff
from tests.auth.helpers import PASSWORD, fresh_email, register
from tests.support.grpc_errors import failure_of
from tests.support.infra import free_port

# Long enough that the logins of the test fit in the first block.
POLICY = LoginBackoff(free_failures=3, base_s=10)


@asynccontextmanager
async def auth_process(
    settings: Settings, pool: AsyncConnectionPool
) -> AsyncIterator[auth_pb2_grpc.AuthServiceStub]:
    """An Auth server of its own (start one, stop it, start another: a restart)."""
    app = build(dataclasses.replace(settings, auth_port=free_port()), pool, login_backoff=POLICY)
    await app.server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.server.bound_port}") as channel:
            yield auth_pb2_grpc.AuthServiceStub(channel)
    finally:
        await app.server.stop()


async def _refused(stub: auth_pb2_grpc.AuthServiceStub, email: str, password: str) -> ExnessError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Login(auth_pb2.LoginRequest(email=email, password=password))
    return failure_of(raised.value)


def test_the_delay_doubles_and_is_bounded() -> None:
    policy = LoginBackoff(free_failures=2, base_s=1, max_s=10)
    assert [policy.delay_after(n) for n in range(1, 9)] == [0, 0, 1, 2, 4, 8, 10, 10]
    assert policy.delay_after(10_000) == 10


async def test_failed_logins_block_the_account_alike_for_unknown_emails(
    auth_settings: Settings, db_pool: AsyncConnectionPool
) -> None:
    known, unknown = fresh_email(), fresh_email("nobody")

    async def run_into_the_block(
        stub: auth_pb2_grpc.AuthServiceStub, email: str
    ) -> list[ExnessError]:
        answers = [
            await _refused(stub, email, "wrong password 1")
            for _ in range(POLICY.free_failures + 1)  # the last starts the first block
        ]
        # Blocked now: even the right password is refused, before it is checked.
        return [*answers, await _refused(stub, email, PASSWORD)]

    async with auth_process(auth_settings, db_pool) as stub:
        await register(stub, known)
        answers = await run_into_the_block(stub, known)
    assert {(a.code, a.reason) for a in answers[:-1]} == {
        (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    }
    throttled = answers[-1]
    assert (throttled.code, throttled.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "LOGIN_THROTTLED",
    )

    async with auth_process(auth_settings, db_pool) as restarted:
        # Another Auth process on the same database (a restart) keeps the block.
        again = await _refused(restarted, known, PASSWORD)
        assert (again.code, again.reason) == (throttled.code, throttled.reason)
        # Nothing tells a registered email apart.
        assert await run_into_the_block(restarted, unknown) == answers
        await asyncio.sleep(float(again.metadata["retry_after_s"]) + 0.5)
        # The block is over: the right password works and starts the count afresh.
        login = await restarted.Login(auth_pb2.LoginRequest(email=known, password=PASSWORD))
        assert login.access_token
        fresh = await _refused(restarted, known, "wrong password 2")
        assert fresh.reason == "INVALID_CREDENTIALS"
