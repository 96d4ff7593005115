"""MarketData test fixtures: one in-process MarketData (API, Kafka fan-out and tick writer)
and one in-process Auth for real user tokens, on the session's real PostgreSQL and broker.

Tests use instruments of their own (symbols starting with ZT), inserted here and removed with
their ticks and candles afterwards, so they never publish prices of real instruments into the
shared `market.quotes` topic that other services consume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Iterable
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from exness.market.v1 import market_pb2, market_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.rpc.interceptors import SERVICE_TOKEN_HEADER
from kit.settings import Settings
from services.auth.main import AuthApp
from services.auth.main import build as build_auth
from services.market.main import MarketApp, build
from tests.support.infra import free_port

SERVICE_TOKEN = "market-tests-service-token"

# symbol, category, price_decimals, spread_markup, synthetic_start, synthetic_vol
TEST_INSTRUMENTS: list[tuple[str, str, int, str, str, str]] = [
    ("ZTAPE", "crypto", 2, "1.00", "100", "0.001"),  # tape replay end to end
    ("ZTSYN", "crypto", 2, "0.20", "250", "0.002"),  # synthetic feed end to end
    ("ZTBAD", "crypto", 2, "1.00", "100", "0.001"),  # rejected quotes
    ("ZTMKP", "forex", 5, "0.00010", "1.1", "0.0001"),  # markup rounding
    ("ZTNOQ", "crypto", 2, "0", "10", "0.001"),  # never quoted
    ("ZTBIN", "crypto", 2, "0.50", "100", "0.001"),  # binance adapter through the poller
    ("ZTKCT", "crypto", 2, "0", "100", "0.001"),  # kcat
    ("ZTRST", "crypto", 2, "0", "100", "0.001"),  # broker restart
    ("ZTSTL", "crypto", 2, "0", "100", "0.001"),  # stalled partition
    ("ZTOLD", "crypto", 2, "0", "100", "0.001"),  # stale quotes
    ("ZTFOV", "crypto", 2, "0", "100", "0.001"),  # poller fail-over between replicas
    ("ZTACT", "forex", 5, "0.00010", "1.1", "0.0001"),  # account types' spreads
    *[(f"ZTS{i}", "crypto", 2, "0", "100", "0.001") for i in range(10)],  # streaming
]


@pytest.fixture(scope="package")
def market_settings(session_dir: Path, database_url: str, kafka_bootstrap: str) -> Settings:
    return dataclasses.replace(
        Settings(),
        data_dir=session_dir / "market-data",
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        service_token=SERVICE_TOKEN,
        auth_port=free_port(),
        log_format="text",
        shutdown_grace_s=1.0,
    )


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def test_instruments(db_pool: AsyncConnectionPool) -> AsyncIterator[list[str]]:
    symbols = [row[0] for row in TEST_INSTRUMENTS]
    async with db_pool.connection() as conn:
        await _forget(conn, symbols)
        for symbol, category, places, markup, start, vol in TEST_INSTRUMENTS:
            await conn.execute(
                "INSERT INTO instruments (symbol, description, category, price_decimals,"
                " contract_size, volume_min, volume_step, volume_max, max_leverage,"
                " spread_markup, synthetic_start, synthetic_vol)"
                " VALUES (%s, %s, %s, %s, 1, 0.01, 0.01, 100, 100, %s, %s, %s)",
                (
                    symbol,
                    f"test instrument {symbol}",
                    category,
                    places,
                    Decimal(markup),
                    Decimal(start),
                    Decimal(vol),
                ),
            )
    yield symbols
    async with db_pool.connection() as conn:
        await _forget(conn, symbols)


async def _forget(conn: object, symbols: list[str]) -> None:
    for table in ("ticks", "candles", "account_type_terms", "instruments"):
        await conn.execute(f"DELETE FROM {table} WHERE symbol = ANY(%s)", (symbols,))  # type: ignore[attr-defined]


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def auth_app(
    market_settings: Settings, db_pool: AsyncConnectionPool
) -> AsyncIterator[AuthApp]:
    app = build_auth(
        dataclasses.replace(market_settings, data_dir=market_settings.data_dir / "auth"),
        db_pool,
        market_settings.auth_port,
    )
    await app.server.start()
    yield app
    await app.server.stop()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def market_app(
    market_settings: Settings,
    db_pool: AsyncConnectionPool,
    test_instruments: list[str],
    auth_app: AuthApp,
) -> AsyncIterator[MarketApp]:
    settings = dataclasses.replace(
        market_settings, auth_addr=f"127.0.0.1:{market_settings.auth_port}"
    )
    app = build(settings, db_pool, port=0, tick_writer_group="market-tests-tick-writer")
    await app.start()
    assert app.tick_writer is not None
    await asyncio.wait_for(app.tick_writer.assigned.wait(), 30)
    yield app
    await app.stop()


@pytest.fixture(scope="package")
def market_address(market_app: MarketApp) -> str:
    assert market_app.server is not None
    return f"127.0.0.1:{market_app.server.bound_port}"


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def market_stub(market_address: str) -> AsyncIterator[market_pb2_grpc.MarketDataServiceStub]:
    async with grpc.aio.insecure_channel(market_address) as channel:
        yield market_pb2_grpc.MarketDataServiceStub(channel)


SERVICE_METADATA = ((SERVICE_TOKEN_HEADER, SERVICE_TOKEN),)


def quote_request(
    symbol: str, bid: str, ask: str, time_ns: int | None = None, source: str = "test"
) -> market_pb2.PublishQuotesRequest:
    request = market_pb2.PublishQuotesRequest(source=source)
    request.quote.symbol = symbol
    request.quote.bid = bid
    request.quote.ask = ask
    request.quote.time.FromNanoseconds(time.time_ns() if time_ns is None else time_ns)
    return request


async def publish(
    stub: market_pb2_grpc.MarketDataServiceStub,
    requests: Iterable[market_pb2.PublishQuotesRequest],
    timeout_s: float = 30,
) -> market_pb2.PublishQuotesResponse:
    async def stream() -> AsyncIterator[market_pb2.PublishQuotesRequest]:
        for request in requests:
            yield request

    response: market_pb2.PublishQuotesResponse = await stub.PublishQuotes(
        stream(), metadata=SERVICE_METADATA, timeout=timeout_s
    )
    return response


async def eventually(
    check: Callable[[], object], timeout_s: float = 20.0, interval_s: float = 0.1
) -> None:
    """Waits until `check()` (sync or async) returns truthy; fails with its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last value: {value!r})")
        await asyncio.sleep(interval_s)
