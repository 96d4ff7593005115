"""Session-wide real infrastructure. Every test talks to a real PostgreSQL and a real
Kafka-protocol broker, each started once per session; tests isolate themselves by using fresh
users, accounts and symbols rather than by restarting servers."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from cli.devstack.broker import EmbeddedBroker
from cli.devstack.postgres import EmbeddedPostgres
from kit.data.db import open_pool
from kit.data.kafka import ensure_topics
from tests.support import infra

# The platforms these tests start trade forex and metals at whatever hour the suite runs, and
# those markets close at the weekend: every process they start (which inherits this
# environment) trades around the clock. The session rules are tested on the engine's own
# clock (tests/trading/test_sessions.py).
os.environ.setdefault("EXNESS_TRADING_SESSIONS", "off")
# Likewise the daily rollover (22:00 UTC) would charge swaps in the middle of a test that runs
# across it. Swaps are tested on the engine's own clock (tests/trading/test_swaps.py).
os.environ.setdefault("EXNESS_SWAPS", "off")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast lane: only tests that need no real server (unit and rule tests)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every real server of the session hangs off `session_dir`, so a test that does not
    (transitively) use it, and is not marked slow (it starts servers of its own), runs
    without PostgreSQL, the broker, Envoy or a browser."""
    if not config.getoption("--fast"):
        return
    fast = [
        item
        for item in items
        if "session_dir" not in getattr(item, "fixturenames", ())
        and item.get_closest_marker("slow") is None
    ]
    config.hook.pytest_deselected(items=[item for item in items if item not in fast])
    items[:] = fast


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    root = infra.session_root()
    yield root
    # Runs after every server fixture that uses the directory has stopped (they depend on it).
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(session_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = infra.start_postgres(session_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    return postgres.url


@pytest.fixture(scope="session")
def single_shard_database_url(postgres: EmbeddedPostgres) -> str:
    """A database of its own for platforms started with the default single engine shard: the
    session database holds users of other shards (auth and scale tests), and a one-shard
    engine refuses a database like that (its shard count is a property of the data)."""
    return infra.fresh_database(postgres.url, "single_shard")


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
