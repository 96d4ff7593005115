"""A partition the fan-out feed stops reading (an injected fault: the consumer is paused,
silently, as a wedged client was seen to be) is found by the partition watch, counted,
reported NOT_SERVING, and read again by a new consumer; and a quote older than the maximum
quote age is served marked stale, to GetQuote callers and stream subscribers alike."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from aiokafka.partitioner import DefaultPartitioner
from exness.market.v1 import market_pb2, market_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.data.faults import STALL_ENV
from kit.data.kafka import QUOTES_TOPIC, TOPIC_PARTITIONS
from kit.settings import Settings
from services.market.hub_feed import FANOUT_CLIENT_ID
from services.market.main import MarketApp, build
from tests.market.conftest import eventually, publish, quote_request

pytestmark = pytest.mark.asyncio(loop_scope="session")

STALLED = "ZTSTL"
OLD = "ZTOLD"
MAX_AGE_S = 2.0


def partition_of(symbol: str) -> int:
    partitions = list(range(TOPIC_PARTITIONS[QUOTES_TOPIC]))
    return int(DefaultPartitioner()(symbol.encode(), partitions, partitions))


@pytest_asyncio.fixture(loop_scope="session")
async def stalling_app(
    market_settings: Settings,
    db_pool: AsyncConnectionPool,
    test_instruments: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[MarketApp]:
    """A MarketData API whose fan-out consumer will not read STALLED's partition."""
    monkeypatch.setenv(STALL_ENV, f"{FANOUT_CLIENT_ID}:{partition_of(STALLED)}")
    settings = dataclasses.replace(market_settings, max_quote_age_s=MAX_AGE_S)
    app = build(settings, db_pool, port=0, role="api")
    assert app.feed is not None
    app.feed.watch.stall_after_s = 3.0
    app.feed.watch.interval_s = 0.5
    await app.start()
    yield app
    await app.stop()


async def _health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        except grpc.aio.AioRpcError:
            return -1
    return int(reply.status)


async def test_a_stalled_partition_is_found_reported_and_read_again(
    stalling_app: MarketApp,
) -> None:
    assert stalling_app.server is not None
    assert stalling_app.feed is not None
    address = f"127.0.0.1:{stalling_app.server.bound_port}"
    statuses: list[int] = []
    sent: list[str] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)

        async def feed() -> None:
            for i in range(10_000):
                bid = f"{100 + i}.00"
                await publish(stub, [quote_request(STALLED, bid, bid)])
                sent.append(bid)
                await asyncio.sleep(0.1)

        async def watch_health() -> None:
            while True:
                statuses.append(await _health(address))
                await asyncio.sleep(0.1)

        tasks = [asyncio.create_task(feed()), asyncio.create_task(watch_health())]
        started = time.monotonic()
        try:
            await eventually(lambda: stalling_app.feed.watch.stalls >= 1, 30)  # type: ignore[union-attr]
            found = time.monotonic() - started

            async def served_current() -> bool:
                try:
                    reply = await stub.GetQuote(market_pb2.GetQuoteRequest(symbol=STALLED))
                except grpc.aio.AioRpcError:  # no quote of it has come through yet
                    return False
                return bool(sent) and reply.quote.bid == sent[-1] and not reply.quote.stale

            await eventually(served_current, 30)
            print(
                f"stall found after {found:.1f}s, quotes served again after "
                f"{time.monotonic() - started:.1f}s"
            )
            await eventually(lambda: statuses[-1] == health_pb2.HealthCheckResponse.SERVING, 15)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert stalling_app.feed.recreated >= 1
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses


async def test_an_old_quote_is_served_marked_stale_until_a_fresh_one_comes(
    stalling_app: MarketApp,
) -> None:
    assert stalling_app.server is not None
    address = f"127.0.0.1:{stalling_app.server.bound_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        await publish(stub, [quote_request(OLD, "50.00", "50.00")])
        stream = stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=[OLD]))
        seen: list[market_pb2.Quote] = []

        async def read() -> None:
            async for message in stream:
                seen.append(message.quote)

        reader = asyncio.create_task(read())
        try:
            await eventually(lambda: any(q.bid == "50.00" and not q.stale for q in seen), 15)
            # No newer quote: past the maximum age the subscriber gets the quote again, marked.
            await eventually(lambda: seen[-1].stale, MAX_AGE_S + 10)
            assert seen[-1].bid == "50.00"
            reply = await stub.GetQuote(market_pb2.GetQuoteRequest(symbol=OLD))
            assert reply.quote.stale
            assert reply.quote.bid == "50.00"

            await publish(stub, [quote_request(OLD, "51.00", "51.00")])
            await eventually(lambda: seen[-1].bid == "51.00", 15)
            assert not seen[-1].stale
            reply = await stub.GetQuote(market_pb2.GetQuoteRequest(symbol=OLD))
            assert not reply.quote.stale
        finally:
            stream.cancel()
            await asyncio.gather(reader, return_exceptions=True)
