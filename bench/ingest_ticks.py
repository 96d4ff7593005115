"""Tick ingest: rows/s of the tick writer (Kafka fetch, decode, COPY into `ticks`, candle
rollups and offsets, one transaction per batch) against a bare COPY of the same rows into the
same table in batches of the same size. Target: writer / bare COPY >= 0.7.

Two bare COPYs run: the rows already encoded as COPY text, one buffer per batch (the
database's own cost: the ratio is taken against this one, the stricter), and psycopg
`write_row` of ready tuples (what a plain client does; shown for reference).

Where the writer's time goes (quiet machine, per row): aiokafka fetch and ConsumerRecord
building ~4 us, protobuf decode + COPY text + candle buckets ~5-6 us, both in the writer's one
Python process, while PostgreSQL's COPY (~3.7 us) runs in its own. The writer is bound by the
Python side (~0.35 of the text COPY, ~0.43 of write_row); more would need the decode spread
over processes (more tick-writer members share the partitions) or a C Kafka client.

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
from services.market.tick_rows import COPY_SQL
from services.market.tick_writer import TickWriter
from tests.support import infra

TOPIC = "bench.ingest"
SYMBOLS = ["BTCUSD", "ETHUSD", "SOLUSD", "EURUSD", "XAUUSD"]
TARGET = 0.7
BARE = "bare COPY (text)"
WRITER = "tick writer"


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


TickRow = tuple[str, datetime, str, str, str, datetime]


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


def as_payloads(rows: list[TickRow], batch: int) -> list[bytes]:
    """COPY text per batch, built independently of the writer's encoder."""
    return [
        "".join(
            f"{r[0]}\t{r[1].isoformat()}\t{r[2]}\t{r[3]}\t{r[4]}\t{r[5].isoformat()}\n"
            for r in rows[i : i + batch]
        ).encode()
        for i in range(0, len(rows), batch)
    ]


async def bare_copy_text(pool: AsyncConnectionPool, payloads: list[bytes], rows: int) -> float:
    await reset(pool)
    started = time.perf_counter()
    for payload in payloads:
        async with (
            pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(COPY_SQL) as copy,
        ):
            await copy.write(payload)
    return rows / (time.perf_counter() - started)


async def bare_copy_rows(pool: AsyncConnectionPool, rows: list[TickRow], batch: int) -> float:
    await reset(pool)
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        async with (
            pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(COPY_SQL) as copy,
        ):
            for row in rows[i : i + batch]:
                await copy.write_row(row)
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


async def main(rows: int, batch: int, runs: int) -> None:
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
        payloads = as_payloads(table_rows, batch)
        pool = await open_pool(postgres.url, max_size=4)
        results: dict[str, list[float]] = {BARE: [], "COPY write_row": [], WRITER: []}
        # Interleaved, so load from other processes hits every path alike.
        for run in range(runs):
            results[BARE].append(await bare_copy_text(pool, payloads, rows))
            results[WRITER].append(await tick_writer(pool, broker.bootstrap, rows, batch, run))
            results["COPY write_row"].append(await bare_copy_rows(pool, table_rows, batch))
        await pool.close()
    finally:
        broker.stop()
        postgres.stop()
    best = {name: max(values) for name, values in results.items()}
    ratio = best[WRITER] / best[BARE]
    per_run = [w / b for w, b in zip(results[WRITER], results[BARE], strict=True)]
    print(f"tick ingest, {rows} rows, batches of {batch} (best of {runs} runs each)")
    print(f"{'path':<22}{'rows/s':>10}   runs")
    for name, values in results.items():
        print(f"{name:<22}{best[name]:>10,.0f}   {'  '.join(f'{v:,.0f}' for v in values)}")
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"ratio writer/{BARE} (best/best): {ratio:.2f} ({verdict} the target of >= {TARGET})")
    print(f"per-run ratios: {'  '.join(f'{r:.2f}' for r in per_run)}")
    print(f"ratio writer/COPY write_row: {best[WRITER] / best['COPY write_row']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.batch, args.runs))
