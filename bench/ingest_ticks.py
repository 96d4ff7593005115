"""Tick ingest: rows/s of the tick writer (Kafka fetch, decode, COPY into `ticks`, candle
rollups and offsets, one transaction per batch) against a bare COPY of the same rows into the
same table in batches of the same size. Target: writer / bare COPY >= 0.7.

Two bare COPYs run: the rows already encoded as COPY text, one buffer per batch (the
database's own cost: the ratio is taken against this one, the stricter), and psycopg
`write_row` of ready tuples (what a plain client does; shown for reference).

The writer runs twice: one member in this process, and `--members` members in as many
processes (the TickWriter of `exness market --role tick-writer`, one consumer group sharing
the partitions: the way the writer scales out). The processes are timed from the first batch
any of them commits to the last row, counting only rows written after that first batch; a
rebalance while they join falls inside the timing (it can only lower the figure).

Where one writer's time goes (quiet 2-core machine, per row): aiokafka fetch and
ConsumerRecord building ~2 us, protobuf decode + COPY text + candle buckets ~4 us, in one
Python process, while PostgreSQL's COPY (~3.4 us) runs in its own. One member is bound by its
Python side; more members add Python processes, but on two cores they share the CPU with
PostgreSQL, so the bench also prints the CPU count.

Starts its own embedded PostgreSQL and broker. `python -m bench.ingest_ticks [--rows N]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from exness.market.v1 import market_pb2
from psycopg_pool import AsyncConnectionPool

from kit.data.db import open_pool
from kit.data.kafka import QUOTES_TOPIC, ensure_topics, make_producer
from services.market.candles import ns_to_datetime
from services.market.tick_rows import COPY_SQL
from services.market.tick_writer import TickWriter
from tests.support import infra

# The topic the real tick-writer processes read (this broker is the bench's own).
TOPIC = QUOTES_TOPIC
SYMBOLS = ["BTCUSD", "ETHUSD", "SOLUSD", "EURUSD", "XAUUSD"]
TARGET = 0.7
BARE = "bare COPY (text)"
WRITER = "tick writer"
ROOT = Path(__file__).resolve().parent.parent


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


async def member(database_url: str, bootstrap: str, group: str, batch: int) -> None:
    """One tick-writer member in its own process (the TickWriter `exness market --role
    tick-writer` runs), until stdin closes."""
    pool = await open_pool(database_url, max_size=2)
    writer = TickWriter(pool, bootstrap, consumer_name=group, topic=TOPIC, max_batch=batch)
    await writer.start()
    await asyncio.to_thread(sys.stdin.read)
    await writer.stop()
    await pool.close()


async def tick_writer_processes(
    pool: AsyncConnectionPool, database_url: str, bootstrap: str, rows: int, batch: int, run: int,
    members: int,
) -> float:  # fmt: skip
    """`members` processes of one fresh consumer, started together; they split the topic's
    partitions through leases in PostgreSQL (a fresh consumer per run: no stored offsets)."""
    await reset(pool)
    group = f"bench-members-{run}"
    command = (sys.executable, "-m", "bench.ingest_ticks", "--member", database_url, bootstrap)
    processes = [
        await asyncio.create_subprocess_exec(
            *command, group, str(batch), cwd=ROOT, stdin=asyncio.subprocess.PIPE
        )
        for _ in range(members)
    ]
    try:
        first: tuple[float, int] | None = None
        while True:
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT coalesce(sum(next_offset), 0)::bigint FROM market_consumer_offsets"
                    " WHERE consumer = %s",
                    (group,),
                )
                row = await cur.fetchone()
            now, done = time.perf_counter(), int(row[0] if row else 0)
            if done and first is None:
                first = (now, done)
            if done >= rows:
                break
            if any(p.returncode is not None for p in processes):
                raise RuntimeError("a tick-writer member exited early")
            await asyncio.sleep(0.005)
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in processes:
            await process.wait()
    assert first is not None
    return (rows - first[1]) / (now - first[0])


async def main(rows: int, batch: int, runs: int, members: int) -> None:
    root = infra.session_root()
    postgres = infra.start_postgres(root)
    broker = infra.start_broker(root)
    members_path = f"{members} writer processes"
    try:
        await ensure_topics(broker.bootstrap)
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
        if members > 1:
            results[members_path] = []
        # Interleaved, so load from other processes hits every path alike.
        for run in range(runs):
            results[BARE].append(await bare_copy_text(pool, payloads, rows))
            results[WRITER].append(await tick_writer(pool, broker.bootstrap, rows, batch, run))
            if members > 1:
                results[members_path].append(
                    await tick_writer_processes(
                        pool, postgres.url, broker.bootstrap, rows, batch, run, members
                    )
                )
            results["COPY write_row"].append(await bare_copy_rows(pool, table_rows, batch))
        await pool.close()
    finally:
        broker.stop()
        postgres.stop()
    best = {name: max(values) for name, values in results.items()}
    print(
        f"tick ingest, {rows} rows, batches of {batch} (best of {runs} runs each),"
        f" {os.cpu_count()} CPUs"
    )
    print(f"{'path':<22}{'rows/s':>10}   runs")
    for name, values in results.items():
        print(f"{name:<22}{best[name]:>10,.0f}   {'  '.join(f'{v:,.0f}' for v in values)}")
    for name in (WRITER, members_path) if members > 1 else (WRITER,):
        ratio = best[name] / best[BARE]
        verdict = "meets" if ratio >= TARGET else "MISSES"
        per_run = [w / b for w, b in zip(results[name], results[BARE], strict=True)]
        print(
            f"{name}: ratio to {BARE} (best/best) {ratio:.2f} ({verdict} the target of"
            f" >= {TARGET}); per run {'  '.join(f'{r:.2f}' for r in per_run)};"
            f" to COPY write_row {best[name] / best['COPY write_row']:.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--members", type=int, default=2, help="tick-writer processes in the second writer run"
    )
    parser.add_argument("--member", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member:
        url, bootstrap, group, batch_size = args.member
        asyncio.run(member(url, bootstrap, group, int(batch_size)))
    else:
        asyncio.run(main(args.rows, args.batch, args.runs, args.members))
