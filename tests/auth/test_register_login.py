"""Register, Login, GetMe and bad input, against a real Auth server and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest
from exness.auth.v1 import auth_pb2, auth_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from tests.auth.helpers import PASSWORD, bearer, fresh_email, register
from tests.support.grpc_errors import failure_of


async def count_users(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM users")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_register_returns_a_session_and_normalises_the_email(
    auth_stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    email = fresh_email("Mixed.Case")
    reply = await register(auth_stub, f"  {email.upper()}  ")
    assert reply.user.email == email.lower()
    assert reply.user.user_id
    assert reply.tokens.token_type == "Bearer"
    assert reply.tokens.expires_in == 300
    me = await auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(reply.tokens.access_token))
    assert me.user.user_id == reply.user.user_id
    assert me.user.email == email.lower()


async def test_duplicate_email_is_already_exists_whatever_its_case(
    auth_stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    email = fresh_email()
    await register(auth_stub, email)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await register(auth_stub, email.upper())
    failure = failure_of(raised.value)
    assert failure.code == grpc.StatusCode.ALREADY_EXISTS
    assert failure.reason == "EMAIL_TAKEN"


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("", PASSWORD, "email"),
        ("x" * 300 + "@example.com", PASSWORD, "email"),
        ("no-at-sign.example.com", PASSWORD, "email"),
        ("two@@example.com", PASSWORD, "email"),
        ("nodot@example", PASSWORD, "email"),
        ("üñí©ødé@exämple.com", PASSWORD, "email"),
        ("'; DROP TABLE users; --@example.com", PASSWORD, "email"),
        ("robert'); DELETE FROM users;--@x.com", PASSWORD, "email"),
        (None, "", "password"),
        (None, "p" * 60_000, "password"),  # over max_len, under the 64 KiB message bound
        (None, "short1", "password"),
        (None, "onlyletterslongenough", "password"),
        (None, "12345678901234", "password"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field_and_stores_nothing(
    auth_stub: auth_pb2_grpc.AuthServiceStub,
    db_pool: AsyncConnectionPool,
    email: str | None,
    password: str,
    field: str,
) -> None:
    # The suite runs sequentially in one session, so the total count only moves if this call
    # stored something.
    users_before = await count_users(db_pool)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.Register(
            auth_pb2.RegisterRequest(
                email=fresh_email("bad") if email is None else email, password=password
            )
        )
    failure = failure_of(raised.value)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in failure.fields, failure
    assert await count_users(db_pool) == users_before


@pytest.mark.parametrize(
    "email", ["' OR ''='", "x' OR 1=1; --", "'; DROP TABLE users; --@example.com"]
)
async def test_sql_looking_login_email_is_only_data(
    auth_stub: auth_pb2_grpc.AuthServiceStub, db_pool: AsyncConnectionPool, email: str
) -> None:
    # Login's email has no pattern rule, so this text reaches the users query unchanged.
    await register(auth_stub, fresh_email(), PASSWORD)
    users_before = await count_users(db_pool)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.Login(auth_pb2.LoginRequest(email=email, password=PASSWORD))
    assert failure_of(raised.value).reason == "INVALID_CREDENTIALS"
    async with db_pool.connection() as conn:
        cur = await conn.execute("SELECT to_regclass('users') IS NOT NULL")
        assert (await cur.fetchone()) == (True,)
    assert await count_users(db_pool) == users_before


async def test_unicode_passwords_work(auth_stub: auth_pb2_grpc.AuthServiceStub) -> None:
    email, password = fresh_email(), "pässwörd-✓-Ωmega-2024"
    await register(auth_stub, email, password)
    login = await auth_stub.Login(auth_pb2.LoginRequest(email=email, password=password))
    assert login.access_token


async def test_wrong_password_and_unknown_email_fail_identically(
    auth_stub: auth_pb2_grpc.AuthServiceStub,
) -> None:
    email = fresh_email()
    await register(auth_stub, email)
    failures = []
    for attempt in (
        auth_pb2.LoginRequest(email=email, password="wrong password 1"),
        auth_pb2.LoginRequest(email=fresh_email("nobody"), password=PASSWORD),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await auth_stub.Login(attempt)
        failures.append(failure_of(raised.value))
    assert failures[0] == failures[1]
    assert failures[0].code == grpc.StatusCode.UNAUTHENTICATED
    assert failures[0].reason == "INVALID_CREDENTIALS"


async def test_login_then_get_me(auth_stub: auth_pb2_grpc.AuthServiceStub) -> None:
    email = fresh_email()
    registered = await register(auth_stub, email)
    login = await auth_stub.Login(auth_pb2.LoginRequest(email=email.upper(), password=PASSWORD))
    assert login.refresh_token != registered.tokens.refresh_token
    me = await auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(login.access_token))
    assert me.user.user_id == registered.user.user_id


async def test_get_me_needs_a_token(auth_stub: auth_pb2_grpc.AuthServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.GetMe(auth_pb2.GetMeRequest())
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await auth_stub.GetMe(auth_pb2.GetMeRequest(), metadata=(("authorization", "Basic abc"),))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
