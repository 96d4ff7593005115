"""A broker restart: the embedded broker keeps records in memory, so it comes back empty, its
topics forgotten and every partition's offsets starting again at 0, below the offsets the
tick writer stored with its data. Runs on a broker of its own (not the session's) and a
MarketData of its own on it.

While the broker is down PublishQuotes fails with UNAVAILABLE / BROKER_UNAVAILABLE; once it is
back, MarketData re-creates the topics, the tick writer notices the reset log and reads it
from the start (no quote is skipped or stored twice), the fan-out feed resumes, and an open
StreamQuotes call keeps receiving quotes without reconnecting. And when the broker restarts
while a tick writer is down and the new log grows past the writer's stored position, the
writer still notices (by the record digest stored with the position) and reads it all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from exness.market.v1 import market_pb2, market_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from cli.devstack.broker import EmbeddedBroker
from kit.data import kafka
from kit.data.kafka import (
    QUOTES_TOPIC,
    TOPIC_PARTITIONS,
    ensure_topics,
    make_consumer,
    make_producer,
)
from kit.settings import Settings
from services.market.main import MarketApp, build
from services.market.quote_producer import BROKER_UNAVAILABLE
from services.market.tick_writer import TickWriter
from tests.market.conftest import eventually, publish, quote_request
from tests.market.test_publish import _error_reason
from tests.support.infra import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

SYMBOL = "ZTRST"
GROUP = "market-restart-tick-writer"
# MarketData's sends give up after this while the broker is down (15 s in production): the
# tests wait for those failures, not for anything the timeout's length changes.
PRODUCE_TIMEOUT_MS = 4000


@pytest.fixture(scope="module")
def own_broker(session_dir: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(port=free_port(), log_path=session_dir / "restart-broker.log")
    broker.start()
    yield broker
    broker.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def restart_app(
    market_settings: Settings,
    db_pool: AsyncConnectionPool,
    test_instruments: list[str],
    own_broker: EmbeddedBroker,
) -> AsyncIterator[MarketApp]:
    await ensure_topics(own_broker.bootstrap)
    async with db_pool.connection() as conn:
        await conn.execute("DELETE FROM market_consumer_offsets WHERE consumer = %s", (GROUP,))
    settings = dataclasses.replace(market_settings, kafka_bootstrap_servers=own_broker.bootstrap)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kafka, "PRODUCE_TIMEOUT_MS", PRODUCE_TIMEOUT_MS)
        app = build(settings, db_pool, port=0, tick_writer_group=GROUP)
    await app.start()
    assert app.tick_writer is not None
    await asyncio.wait_for(app.tick_writer.assigned.wait(), 30)
    yield app
    await app.stop()


async def stored_bids(pool: AsyncConnectionPool, symbol: str = SYMBOL) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT bid::text FROM ticks WHERE symbol = %s ORDER BY time", (symbol,)
        )
        return [row[0] for row in await cur.fetchall()]


async def test_ticks_and_streams_survive_a_broker_restart(
    restart_app: MarketApp, own_broker: EmbeddedBroker, db_pool: AsyncConnectionPool
) -> None:
    assert restart_app.server is not None
    assert restart_app.tick_writer is not None
    writer = restart_app.tick_writer
    async with grpc.aio.insecure_channel(f"127.0.0.1:{restart_app.server.bound_port}") as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        # Quote times a microsecond apart: PostgreSQL keeps microseconds, and ORDER BY time must
        # give back the publishing order.
        t0 = time.time_ns()
        before = [f"{100 + i}.00" for i in range(30)]
        response = await publish(
            stub,
            [quote_request(SYMBOL, bid, bid, t0 + i * 1000) for i, bid in enumerate(before)],
            60,
        )
        assert response.accepted == 30

        async def stored_end_with(expected: list[str]) -> bool:
            return (await stored_bids(db_pool))[-len(expected) :] == expected

        await eventually(lambda: stored_end_with(before), 60)

        stream = stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=[SYMBOL]))
        streamed: list[str] = []

        async def read_stream() -> None:
            async for message in stream:
                # During the outage the last quote is sent again marked stale; that is a
                # mark on a quote already seen, not a new one.
                if not message.quote.stale:
                    streamed.append(message.quote.bid)

        reader = asyncio.create_task(read_stream())
        await eventually(lambda: streamed == [before[-1]], 30)

        own_broker.stop()
        # Down: the quote cannot be delivered; the caller is told why and can retry.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await publish(stub, [quote_request(SYMBOL, "1.00", "1.00", t0 + 100_000)], 60)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _error_reason(caught.value) == BROKER_UNAVAILABLE

        own_broker.start()
        # MarketData re-creates the topics with their partitions (nobody else does).
        await eventually(lambda: _topic_partitions(own_broker.bootstrap), 30, 0.5)

        # Fewer records than before the restart: the new log ends below the stored offset.
        after = [f"{200 + i}.00" for i in range(5)]
        t1 = time.time_ns()
        response = await publish(
            stub,
            [quote_request(SYMBOL, bid, bid, t1 + i * 1000) for i, bid in enumerate(after)],
            60,
        )
        assert response.accepted == 5

        # Every quote once: the 30 from before (plus the undeliverable one if the producer
        # did get it out before failing) and the 5 from after.
        await eventually(lambda: stored_end_with(after), 60)
        bids = await stored_bids(db_pool)
        assert bids[:30] == before
        assert bids[-5:] == after
        assert len(bids) in (35, 36)
        assert writer.log_resets >= 1

        # The open stream got the new quotes (the newest at least; a slow reader may skip
        # some), in order, without reconnecting.
        await eventually(lambda: streamed[-1] == after[-1], 60)
        assert not reader.done()
        assert streamed[0] == before[-1]
        assert set(streamed[1:]) <= set(after)
        assert streamed[1:] == sorted(streamed[1:])
        reply = await stub.GetQuote(market_pb2.GetQuoteRequest(symbol=SYMBOL))
        assert reply.quote.bid == after[-1]
        stream.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def _topic_partitions(bootstrap: str) -> bool:
    consumer = make_consumer(bootstrap, group_id=None)
    try:
        await consumer.start()
        await consumer.topics()
        partitions = consumer.partitions_for_topic(QUOTES_TOPIC) or set()
        return len(partitions) == TOPIC_PARTITIONS[QUOTES_TOPIC]
    except Exception:
        return False
    finally:
        await consumer.stop()


REPLACED_SYMBOL = "ZTRPL"
REPLACED_TOPIC = "test.replaced-log"


async def _produce_quotes(
    bootstrap: str,
    bids: list[int],
    t0: int,
    topic: str = REPLACED_TOPIC,
    symbol: str = REPLACED_SYMBOL,
) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for i, bid in enumerate(bids):
            event = market_pb2.QuoteEvent(source="test")
            event.quote.symbol, event.quote.bid, event.quote.ask = (
                symbol,
                str(bid),
                str(bid),
            )
            event.quote.time.FromNanoseconds(t0 + i * 1000)
            event.publish_time.FromNanoseconds(t0 + i * 1000)
            await producer.send(topic, event.SerializeToString(), key=b"k")
        await producer.flush()
    finally:
        await producer.stop()


async def test_stored_positions_are_checked_against_the_log_itself(
    restart_app: MarketApp, own_broker: EmbeddedBroker, db_pool: AsyncConnectionPool
) -> None:
    """A tick writer restarting on the same log resumes where it stopped, even though the
    embedded broker under-reports the log end when the last batch holds several records. The
    broker then restarts while the writer is down, and producers write more records than the
    writer had stored: the stored offset now lies inside the new log, but the record there is
    not the one stored with the position, so the writer reads the new log from offset 0
    instead of skipping its first records."""
    consumer = "test-replaced-log-writer"
    async with db_pool.connection() as conn:
        await conn.execute("DELETE FROM market_consumer_offsets WHERE consumer = %s", (consumer,))
    await ensure_topics(own_broker.bootstrap, {REPLACED_TOPIC: 1})
    t0 = time.time_ns()
    await _produce_quotes(own_broker.bootstrap, list(range(1, 11)), t0)

    def new_writer() -> TickWriter:
        return TickWriter(
            db_pool, own_broker.bootstrap, consumer_name=consumer, topic=REPLACED_TOPIC
        )

    writer = new_writer()
    await writer.start()
    await eventually(lambda: writer.rows_written == 10, 60)
    await writer.stop()

    writer = new_writer()
    await writer.start()
    try:
        await asyncio.wait_for(writer.assigned.wait(), 60)
        assert writer.log_resets == 0
        assert writer._read_positions == {0: 10}
    finally:
        await writer.stop()

    own_broker.stop()
    own_broker.start()
    await ensure_topics(own_broker.bootstrap, {REPLACED_TOPIC: 1})
    await _produce_quotes(own_broker.bootstrap, list(range(101, 116)), t0 + 10**9)

    writer = new_writer()
    await writer.start()
    try:
        await eventually(lambda: writer.rows_written == 15, 60)
        assert writer.log_resets == 1
    finally:
        await writer.stop()
    assert await stored_bids(db_pool, REPLACED_SYMBOL) == [
        str(b) for b in [*range(1, 11), *range(101, 116)]
    ]


async def test_publishing_resumes_at_once_after_the_broker_returns(
    restart_app: MarketApp, own_broker: EmbeddedBroker
) -> None:
    """Quotes sent while the broker is down all fail; once it is back (and its topics exist),
    the next PublishQuotes call is accepted. Before, every failed send of the outage stayed
    queued and failed one more call each: the poller saw a minute of BROKER_UNAVAILABLE."""
    assert restart_app.server is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{restart_app.server.bound_port}") as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        await publish(stub, [quote_request(SYMBOL, "300.00", "300.00")], 60)
        own_broker.stop()
        t0 = time.time_ns()
        outage = [quote_request(SYMBOL, "301.00", "301.00", t0 + i * 1000) for i in range(200)]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await publish(stub, outage, 60)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # Until every send of the outage has failed (none is left in flight).
        publisher = restart_app.publisher
        assert publisher is not None
        await eventually(lambda: publisher.unsettled == 0, PRODUCE_TIMEOUT_MS / 1000 + 5, 0.2)
        own_broker.start()
        await ensure_topics(own_broker.bootstrap)
        back = time.monotonic()
        await eventually(lambda: _accepted(stub), 30, 0.2)
        # One retry may still race the producer's reconnection; hundreds may not.
        print(f"publishing resumed {time.monotonic() - back:.1f}s after the broker returned")
        assert time.monotonic() - back < 10


async def _accepted(stub: market_pb2_grpc.MarketDataServiceStub) -> bool:
    try:
        reply = await publish(stub, [quote_request(SYMBOL, "302.00", "302.00")], 10)
    except grpc.aio.AioRpcError:
        return False
    return reply.accepted == 1
