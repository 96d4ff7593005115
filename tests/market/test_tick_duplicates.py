"""A quote written twice is stored once: the tick writer re-reading a log (its position lost,
or a log the broker replaced) used to store every re-read quote again, and its candles
counted every re-read quote again."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from psycopg_pool import AsyncConnectionPool

from kit.data.kafka import ensure_topics
from services.market.tick_writer import TickWriter
from tests.market.conftest import eventually
from tests.market.test_broker_restart import _produce_quotes

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOPIC = "test.reread-ticks"
CONSUMER = "test-reread-writer"
SYMBOL = "ZTDUP"


async def _stored(pool: AsyncConnectionPool) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT bid::text FROM ticks WHERE symbol = %s ORDER BY time", (SYMBOL,)
        )
        return [row[0] for row in await cur.fetchall()]


def _written_all(writer: TickWriter, rows: int) -> Callable[[], bool]:
    return lambda: writer.rows_written == rows


async def test_a_log_read_twice_stores_each_quote_once(
    db_pool: AsyncConnectionPool, kafka_bootstrap: str, test_instruments: list[str]
) -> None:
    async with db_pool.connection() as conn:
        await conn.execute("DELETE FROM market_consumer_offsets WHERE consumer = %s", (CONSUMER,))
        await conn.execute("DELETE FROM ticks WHERE symbol = %s", (SYMBOL,))
        await conn.execute("DELETE FROM candles WHERE symbol = %s", (SYMBOL,))
    await ensure_topics(kafka_bootstrap, {TOPIC: 1})
    # One minute apart from any other run's quotes on this topic: a candle of its own.
    t0 = (time.time_ns() // 60_000_000_000 + 1) * 60_000_000_000
    await _produce_quotes(kafka_bootstrap, list(range(1, 11)), t0, TOPIC, SYMBOL)

    for attempt in range(3):
        if attempt:  # the writer loses its position: it reads the whole log again
            async with db_pool.connection() as conn:
                await conn.execute(
                    "DELETE FROM market_consumer_offsets WHERE consumer = %s", (CONSUMER,)
                )
        if attempt == 2:  # ... which has grown meanwhile: old and new quotes in one batch
            await _produce_quotes(kafka_bootstrap, [11, 0], t0 + 10_000, TOPIC, SYMBOL)
        writer = TickWriter(db_pool, kafka_bootstrap, consumer_name=CONSUMER, topic=TOPIC)
        await writer.start()
        try:
            await eventually(_written_all(writer, 10 if attempt < 2 else 12), 60)
        finally:
            await writer.stop()
    assert await _stored(db_pool) == [str(b) for b in [*range(1, 12), 0]]
    assert writer.duplicates_skipped == 10
    # Candles count each tick once, and only the new ones move them.
    async with db_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT interval_s, open::text, high::text, low::text, close::text, tick_count"
            " FROM candles WHERE symbol = %s ORDER BY interval_s",
            (SYMBOL,),
        )
        candles = await cur.fetchall()
    assert [c[1:] for c in candles] == [("1", "11", "0", "0", 12)] * 6, candles
