"""Session-wide real infrastructure. Every test talks to a real PostgreSQL and a real
Kafka-protocol broker, each started once per session; tests isolate themselves by using fresh
users, accounts and symbols rather than by restarting servers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from cli.devstack.broker import EmbeddedBroker
from cli.devstack.postgres import EmbeddedPostgres
from kit.data.db import open_pool
from kit.data.kafka import ensure_topics
from tests.support import infra


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return infra.session_root()


@pytest.fixture(scope="session")
def postgres(session_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = infra.start_postgres(session_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    return postgres.url


@pytest.fixture(scope="session")
async def db_pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(database_url, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def broker(session_dir: Path) -> Iterator[EmbeddedBroker]:
    server = infra.start_broker(session_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def kafka_bootstrap(broker: EmbeddedBroker) -> str:
    await ensure_topics(broker.bootstrap)
    return broker.bootstrap


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("EXNESS_TEST_ARTIFACTS", "test-artifacts")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
