"""AuthServicer unit tests with grpcio-testing: the servicer's own logic, invoked without a
network server (grpc_testing drives it), still on the session's real PostgreSQL.

grpc_testing calls handlers synchronously from its own threads, so the async servicer runs on
a private event loop thread and each call is handed to it; ServiceError becomes the call's
status the way the request pipeline does it in a real server."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc_testing
import jwt
import pytest
from exness.auth.v1 import auth_pb2

from kit.data.db import open_pool
from kit.rpc.errors import ServiceError
from kit.settings import Settings
from services.auth.keys import Keyring
from services.auth.servicer import AuthServicer
from services.auth.store import AuthStore
from services.auth.tokens import AccessTokenIssuer
from tests.auth.helpers import PASSWORD, fresh_email

AUTH_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class SyncFacade:
    """What grpc_testing can call: each method runs the async servicer's on the loop thread."""

    def __init__(self, servicer: AuthServicer, loop: LoopThread) -> None:
        self._servicer = servicer
        self._loop = loop

    def __getattr__(self, name: str) -> Callable[[Any, Any], Any]:
        method = getattr(self._servicer, name)

        def call(request: Any, context: Any) -> Any:
            try:
                return self._loop.run(method(request, context))
            except ServiceError as exc:
                context.abort(exc.code, exc.message)

        return call


@pytest.fixture(scope="module")
def auth_testing_server(session_dir: Path, database_url: str) -> Iterator[grpc_testing.Server]:
    loop = LoopThread()
    settings = dataclasses.replace(Settings(), data_dir=session_dir / "auth-unit")
    pool = loop.run(open_pool(database_url, max_size=2))
    keyring = Keyring.load(settings.data_dir / "keys")
    servicer = AuthServicer(
        AuthStore(pool),
        keyring,
        AccessTokenIssuer(keyring, settings.jwt_issuer, settings.jwt_audience, 60),
        refresh_ttl_s=3600,
        shard_count=4,
    )
    yield grpc_testing.server_from_dictionary(
        {AUTH_SERVICE: SyncFacade(servicer, loop)}, grpc_testing.strict_real_time()
    )
    loop.run(pool.close())
    loop.close()


def invoke(
    server: grpc_testing.Server, method: str, request: Any
) -> tuple[Any, grpc.StatusCode, str]:
    rpc = server.invoke_unary_unary(AUTH_SERVICE.methods_by_name[method], (), request, None)
    response, _, code, details = rpc.termination()
    return response, code, details


def test_register_assigns_a_shard_and_issues_tokens(
    auth_testing_server: grpc_testing.Server,
) -> None:
    # Several users: with shard_count ignored, one alone would still pass a quarter of the time.
    for _ in range(8):
        response, code, _ = invoke(
            auth_testing_server,
            "Register",
            auth_pb2.RegisterRequest(email=fresh_email(), password=PASSWORD),
        )
        assert code == grpc.StatusCode.OK
        # The shard is the user id (a UUID) modulo shard_count; the access token carries it.
        shard = uuid.UUID(response.user.user_id).int % 4
        assert response.user.shard == shard
        claims = jwt.decode(response.tokens.access_token, options={"verify_signature": False})
        assert claims["shard"] == shard
        assert response.tokens.expires_in == 60


def test_weak_password_is_invalid_argument(auth_testing_server: grpc_testing.Server) -> None:
    _, code, details = invoke(
        auth_testing_server,
        "Register",
        auth_pb2.RegisterRequest(email=fresh_email(), password="abcdefghij"),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "password" in details


def test_login_failure_is_unauthenticated(auth_testing_server: grpc_testing.Server) -> None:
    _, code, _ = invoke(
        auth_testing_server, "Login", auth_pb2.LoginRequest(email=fresh_email(), password=PASSWORD)
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_jwks_is_json_with_the_signing_key(auth_testing_server: grpc_testing.Server) -> None:
    import json

    response, code, _ = invoke(auth_testing_server, "GetJwks", auth_pb2.GetJwksRequest())
    assert code == grpc.StatusCode.OK
    assert response.content_type == "application/json"
    assert [key["kty"] for key in json.loads(response.data)["keys"]] == ["OKP"]
