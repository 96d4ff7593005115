"""A tick writer that hands partitions on keeps writing the ones it keeps.

When a member joins, the one that held every partition shrinks its assignment while its reader
is between two fetches. aiokafka answers `highwater` for a partition no longer assigned with an
AssertionError; the reader asked it for every partition it had read, so it died on the spot
(silently: nothing awaited it) and the partitions it kept were leased to a member that wrote
nothing. Seen as "some partitions not written after members restart" and as a MarketData
replica that stayed NOT_SERVING (its tick writer reported stalled) after another one was killed.

In-process members with short leases, on a topic of their own on the session's broker."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import TopicPartition
from exness.market.v1 import market_pb2
from psycopg_pool import AsyncConnectionPool

from kit.data.kafka import ensure_topics, make_consumer, make_producer
from kit.data.kafka_probe import behind_log_end, seen_log_end
from services.market.tick_writer import TickWriter

pytestmark = pytest.mark.asyncio(loop_scope="session")

PARTITIONS = 4
SETTLE_S = 20.0


async def test_a_shrunk_assignment_is_checked_without_error(kafka_bootstrap: str) -> None:
    topic = f"test.shrink.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, {topic: PARTITIONS})
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    consumer = make_consumer(kafka_bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        for partition in range(PARTITIONS):
            await producer.send_and_wait(topic, b"record", partition=partition)
        every = [TopicPartition(topic, p) for p in range(PARTITIONS)]

        async def fetched(partitions: list[TopicPartition]) -> None:
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, 0)
            deadline = time.monotonic() + 10
            while any(consumer.highwater(tp) is None for tp in partitions):
                assert time.monotonic() < deadline, "no fetch answered"
                await consumer.getmany(timeout_ms=100)

        await fetched(every)
        await fetched(every[:1])  # handed three partitions on
        # Positions still name the partitions handed on: they are not judged, not an error.
        positions = dict.fromkeys(range(PARTITIONS), 5)
        assert behind_log_end(consumer, topic, positions) == {0}  # its log ends at 1
        assert seen_log_end(consumer, every[0]) == 1
        assert seen_log_end(consumer, every[1]) is None
    finally:
        await consumer.stop()
        await producer.stop()


def _owned(writer: TickWriter) -> set[int]:
    return {tp.partition for tp in writer.consumer.assignment()}


async def _wait(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not await check():
        assert time.monotonic() < deadline, f"{what} within {SETTLE_S:g}s"
        await asyncio.sleep(0.1)


async def test_a_member_that_shrinks_keeps_writing(
    kafka_bootstrap: str, db_pool: AsyncConnectionPool
) -> None:
    tag = uuid.uuid4().hex[:6]
    topic = f"test.handover.{tag}"
    consumer_name = f"handover-{tag}"
    symbols = [f"ZTH{tag}{p}" for p in range(PARTITIONS)]
    await ensure_topics(kafka_bootstrap, {topic: PARTITIONS})
    published = dict.fromkeys(symbols, 0)

    def writer(member: str) -> TickWriter:
        return TickWriter(
            db_pool,
            kafka_bootstrap,
            consumer_name=consumer_name,
            topic=topic,
            member=f"{member}-{tag}",
            lease_ttl_s=1.5,
            batch_wait_ms=20,
        )

    producer = make_producer(kafka_bootstrap)
    await producer.start()
    t0 = time.time_ns()
    sent = 0

    async def publish_round() -> None:
        nonlocal sent
        for partition, symbol in enumerate(symbols):
            sent += 1
            event = market_pb2.QuoteEvent(source="handover-test")
            event.quote.symbol = symbol
            event.quote.bid, event.quote.ask = f"{sent}.00", f"{sent}.50"
            event.quote.time.FromNanoseconds(t0 + sent * 1000)
            await producer.send_and_wait(topic, event.SerializeToString(), partition=partition)
            published[symbol] += 1

    async def stored() -> dict[str, int]:
        async with db_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT symbol, count(*) FROM ticks WHERE symbol = ANY(%s) GROUP BY symbol",
                (symbols,),
            )
            return {s: int(n) for s, n in await cur.fetchall()}

    async def caught_up() -> bool:
        return await stored() == published

    stayer = writer("a")
    await stayer.start()
    try:
        await _wait("the first member owns every partition", lambda: _owns(stayer, 4))
        for _ in range(3):  # every join shrinks the first member's assignment
            joiner = writer(f"b{uuid.uuid4().hex[:4]}")
            await joiner.start()
            try:
                await _wait("the partitions split", functools.partial(_split, stayer, joiner))
                for _ in range(5):
                    await publish_round()
                await _wait("every quote stored while two members write", caught_up)
            finally:
                await joiner.stop()  # hands its partitions back at once
            await _wait("the first member owns every partition", lambda: _owns(stayer, 4))
            await publish_round()
            await _wait("every quote stored by the one member left", caught_up)
        assert stayer.reader_failures == 0, "the reader failed (and was restarted)"
        counts = await stored()
        assert counts == published, f"stored {counts}, published {published}"
    finally:
        await stayer.stop()
        await producer.stop()
        async with db_pool.connection() as conn:
            await conn.execute("DELETE FROM ticks WHERE symbol = ANY(%s)", (symbols,))
            await conn.execute("DELETE FROM candles WHERE symbol = ANY(%s)", (symbols,))
            for table in ("market_consumer_offsets", "partition_leases", "consumer_members"):
                await conn.execute(f"DELETE FROM {table} WHERE consumer = %s", (consumer_name,))


async def _owns(writer: TickWriter, count: int) -> bool:
    return len(_owned(writer)) == count and writer.assigned.is_set()


async def _split(a: TickWriter, b: TickWriter) -> bool:
    owned_a, owned_b = _owned(a), _owned(b)
    return len(owned_a) == len(owned_b) == PARTITIONS // 2 and not owned_a & owned_b
