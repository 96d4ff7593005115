"""An Auth server on a free port, in-process, against the session's real PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from exness.auth.v1 import auth_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.settings import Settings
from services.auth.main import AuthApp, build
from tests.support.infra import free_port


@pytest.fixture(scope="session")
def auth_settings(session_dir: Path, database_url: str) -> Settings:
    return dataclasses.replace(
        Settings(),
        data_dir=session_dir / "auth-data",
        database_url=database_url,
        auth_port=free_port(),
        access_token_ttl_s=300,
    )


@pytest.fixture(scope="session")
async def auth_app(auth_settings: Settings, db_pool: AsyncConnectionPool) -> AsyncIterator[AuthApp]:
    app = build(auth_settings, db_pool)
    await app.server.start()
    yield app
    await app.server.stop()


@pytest.fixture(scope="session")
def auth_address(auth_app: AuthApp) -> str:
    return f"127.0.0.1:{auth_app.server.bound_port}"


@pytest.fixture(scope="session")
async def auth_stub(auth_address: str) -> AsyncIterator[auth_pb2_grpc.AuthServiceStub]:
    async with grpc.aio.insecure_channel(auth_address) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)
