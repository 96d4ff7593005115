"""Tick ingest: rows/s of the tick writer (Kafka fetch, decode, COPY into `ticks`, candle
rollups and offsets, one transaction per batch) against a bare COPY of the same rows into the
same table in batches of the same size. Target: writer / bare COPY >= 0.7.

Starts its own embedded PostgreSQL and broker. `python -m bench.ingest_ticks [--rows N]`
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime

from exness.market.v1 import market_pb2
from psycopg_pool import AsyncConnectionPool

from services.kit.db import open_pool
from services.kit.kafka import ensure_topics, make_producer
from services.market.candles import ns_to_datetime
from services.market.tick_writer import TickRow, TickWriter, copy_ticks
from tests.support import infra

TOPIC = "bench.ingest"
SYMBOLS = ["BTCUSD", "ETHUSD", "SOLUSD", "EURUSD", "XAUUSD"]
TARGET = 0.7


def make_events(rows: int) -> list[market_pb2.QuoteEvent]:
    rng = random.Random(1)
    start_ns = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()) * 10**9
    events = []
    for i in range(rows):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        bid = 1000 + rng.randint(0, 100000) / 100
        event = market_pb2.QuoteEvent(source="bench")
        event.quote.symbol = symbol
        event.quote.bid = f"{bid:.2f}"  # text built once; prices stay decimal strings
        event.quote.ask = f"{bid + 0.5:.2f}"
        event.quote.time.FromNanoseconds(start_ns + i * 50_000_000)
        event.publish_time.FromNanoseconds(start_ns + i * 50_000_000 + 1_000_000)
        events.append(event)
    return events


def as_rows(events: list[market_pb2.QuoteEvent]) -> list[TickRow]:
    return [
        (
            e.quote.symbol,
            ns_to_datetime(e.quote.time.ToNanoseconds()),
            e.quote.bid,
            e.quote.ask,
            e.source,
            ns_to_datetime(e.publish_time.ToNanoseconds()),
        )
        for e in events
    ]


async def reset(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute("TRUNCATE ticks, candles, market_consumer_offsets")
        await conn.execute("CHECKPOINT")


async def bare_copy(pool: AsyncConnectionPool, rows: list[TickRow], batch: int) -> float:
    await reset(pool)
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        async with pool.connection() as conn, conn.transaction():
            await copy_ticks(conn, rows[i : i + batch])
    return len(rows) / (time.perf_counter() - started)


async def tick_writer(
    pool: AsyncConnectionPool, bootstrap: str, rows: int, batch: int, run: int
) -> float:
    await reset(pool)
    writer = TickWriter(
        pool, bootstrap, consumer_name=f"bench-writer-{run}", topic=TOPIC, max_batch=batch
    )
    await writer.start()
    await writer.assigned.wait()  # group join is start-up cost, not ingest
    started = time.perf_counter()
    while writer.rows_written < rows:  # noqa: ASYNC110 - a counter, polled
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    await writer.stop()
    assert writer.rows_written == rows, (
        writer.rows_written,
        writer.malformed,
        writer.fence_conflicts,
    )
    assert writer.malformed == 0
    return rows / elapsed


async def main(rows: int, batch: int) -> None:
    root = infra.session_root()
    postgres = infra.start_postgres(root)
    broker = infra.start_broker(root)
    try:
        await ensure_topics(broker.bootstrap, {TOPIC: 4})
        events = make_events(rows)
        producer = make_producer(broker.bootstrap, linger_ms=20)
        await producer.start()
        for event in events:
            await producer.send(TOPIC, event.SerializeToString(), key=event.quote.symbol.encode())
        await producer.flush()
        await producer.stop()
        table_rows = as_rows(events)
        pool = await open_pool(postgres.url, max_size=4)
        results: dict[str, list[float]] = {"bare COPY": [], "tick writer": []}
        for run in range(2):
            results["bare COPY"].append(await bare_copy(pool, table_rows, batch))
            results["tick writer"].append(
                await tick_writer(pool, broker.bootstrap, rows, batch, run)
            )
        await pool.close()
    finally:
        broker.stop()
        postgres.stop()
    best = {name: max(values) for name, values in results.items()}
    ratio = best["tick writer"] / best["bare COPY"]
    print(f"tick ingest, {rows} rows, batches of {batch} (best of 2 runs each)")
    print(f"{'path':<14}{'rows/s':>12}{'runs':>28}")
    for name, values in results.items():
        print(f"{name:<14}{best[name]:>12,.0f}{'  '.join(f'{v:,.0f}' for v in values):>28}")
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"ratio writer/COPY: {ratio:.2f} ({verdict} the target of >= {TARGET})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.batch))
