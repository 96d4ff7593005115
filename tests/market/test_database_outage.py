"""PostgreSQL goes away under a running MarketData (its own server here, stopped and started
by the test): calls that need the database fail fast with UNAVAILABLE (DATABASE_UNAVAILABLE)
instead of hanging to their deadline, health says NOT_SERVING, and both recover by themselves
when the database is back."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from exness.market.v1 import market_pb2, market_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cli.devstack.postgres import EmbeddedPostgres
from kit.data.db import open_pool
from kit.settings import Settings
from services.market.main import MarketApp, build
from tests.market.conftest import eventually
from tests.market.test_publish import _error_reason
from tests.support import infra

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def own_postgres(session_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = infra.start_postgres(session_dir / "outage")
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def outage_app(
    market_settings: Settings, own_postgres: EmbeddedPostgres
) -> AsyncIterator[MarketApp]:
    settings = dataclasses.replace(market_settings, database_url=own_postgres.url)
    pool = await open_pool(own_postgres.url, max_size=4)
    app = build(settings, pool, port=0, role="api")
    await app.start()
    yield app
    await app.stop()
    await pool.close()


def _candles() -> market_pb2.GetCandlesRequest:
    return market_pb2.GetCandlesRequest(
        symbol="BTCUSD", interval=market_pb2.CANDLE_INTERVAL_1M, limit=5
    )


async def test_calls_fail_fast_while_the_database_is_down_and_recover(
    outage_app: MarketApp, own_postgres: EmbeddedPostgres
) -> None:
    assert outage_app.server is not None
    address = f"127.0.0.1:{outage_app.server.bound_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
            return int(reply.status)

        async def says(expected: int) -> bool:
            return await status() == expected

        await stub.GetCandles(_candles(), timeout=10)
        assert await status() == health_pb2.HealthCheckResponse.SERVING

        own_postgres.kill()  # kill -9 of the server and its backends
        await eventually(lambda: says(health_pb2.HealthCheckResponse.NOT_SERVING), 15)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetCandles(_candles(), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _error_reason(refused.value) == "DATABASE_UNAVAILABLE"
        print(f"refused after {time.monotonic() - started:.1f}s (deadline 30s)")

        own_postgres.start()
        await eventually(lambda: says(health_pb2.HealthCheckResponse.SERVING), 30)
        reply = await stub.GetCandles(_candles(), timeout=10)
        assert reply.symbol == "BTCUSD"
