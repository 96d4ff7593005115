"""Quote fan-out: 1,000 StreamQuotes subscribers on a real MarketData process (`exness market
--role api`: gRPC + its Kafka feed) while quotes are published through PublishQuotes at 50/s
in total; delivered messages/s and p50/p99 tick-to-subscriber latency (the quote's time,
stamped by the publisher right before sending, to receipt by the subscriber), against a bare
aiokafka consumer reading `market.quotes` in the same run (same clock, same quotes).
Target: subscriber p99 < 50 ms.

Subscribers run in `--workers` separate processes (many streams per channel), so the
measurement is not limited by one client process; each worker's own CPU time is printed
so a client-side bottleneck is visible.

Starts its own embedded PostgreSQL and broker. `python -m bench.fanout_quotes [--seconds 20]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import grpc
from aiokafka import TopicPartition
from exness.market.v1 import market_pb2, market_pb2_grpc

from kit.data.kafka import QUOTES_TOPIC, ensure_topics
from kit.obs.metrics import metrics_enabled
from kit.rpc.interceptors import SERVICE_TOKEN_HEADER
from services.market.hub_feed import make_fanout_consumer
from tests.support import infra

TARGET_P99_MS = 50.0
SERVICE_TOKEN = "bench-fanout-service-token"
# Listed by migrations/0100_instruments.sql: (symbol, price decimals, start price).
SYMBOLS = [
    ("BTCUSD", 2, "65000"),
    ("ETHUSD", 2, "3200"),
    ("SOLUSD", 3, "150"),
    ("EURUSD", 5, "1.085"),
    ("XAUUSD", 2, "2400"),
]
STREAMS_PER_CHANNEL = 100
ROOT = Path(__file__).resolve().parent.parent


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return math.nan
    return float(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))])


def progress(message: str) -> None:
    print(f"[fanout] {message}", file=sys.stderr, flush=True)


def ms(value_ns: float) -> str:
    return f"{value_ns / 1e6:.1f}"


def symbols_of(index: int, per_subscriber: int) -> list[str]:
    return [SYMBOLS[(index + k) % len(SYMBOLS)][0] for k in range(per_subscriber)]


# --- subscriber worker process -------------------------------------------------------------


async def worker(address: str, first: int, count: int, per_subscriber: int) -> None:
    """Runs `count` subscribers; prints "ready" once each has its first (snapshot) message,
    then counts messages whose quote time lies in the window main sends on stdin."""
    # A connection per channel (gRPC would otherwise share one subchannel between them).
    channels = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(math.ceil(count / STREAMS_PER_CHANNEL))
    ]
    latencies: list[int] = []
    window: list[int] = [sys.maxsize, sys.maxsize]
    started = 0
    all_started = asyncio.Event()

    async def subscriber(index: int) -> None:
        nonlocal started
        stub = market_pb2_grpc.MarketDataServiceStub(channels[index % len(channels)])
        request = market_pb2.StreamQuotesRequest(symbols=symbols_of(first + index, per_subscriber))
        seen_first = False
        async for message in stub.StreamQuotes(request):
            now = time.time_ns()
            quote_ns = message.quote.time.ToNanoseconds()
            if window[0] <= quote_ns < window[1]:
                latencies.append(now - quote_ns)
            if not seen_first:
                seen_first = True
                started += 1
                if started == count:
                    all_started.set()

    tasks = [asyncio.create_task(subscriber(i)) for i in range(count)]
    while not all_started.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_started.wait(), 5)
        failed = [t for t in tasks if t.done()]
        if failed:
            raise RuntimeError(f"{len(failed)} streams ended early: {failed[0].exception()!r}")
        print(f"[worker {first}] {started}/{count} streams started", file=sys.stderr, flush=True)
    print("ready", flush=True)
    command = (await asyncio.to_thread(sys.stdin.readline)).split()
    window[0] = int(command[1])
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    command = (await asyncio.to_thread(sys.stdin.readline)).split()
    window[1] = int(command[1])
    await asyncio.sleep(float(command[2]))  # let the last quotes arrive
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    print(json.dumps({"latencies_ns": latencies, "cpu_s": cpu_s}), flush=True)


# --- bare consumer and publisher (main process) --------------------------------------------


class BareConsumer:
    """aiokafka, every partition, from the end: what any Kafka client sees of the quotes
    (with the feed's fetch wait, which bounds latency on the embedded broker)."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = make_fanout_consumer(bootstrap, client_id="bench-bare")
        self.latencies: list[int] = []
        self.publish_latencies: list[int] = []
        self.window = [sys.maxsize, sys.maxsize]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(QUOTES_TOPIC) or set()
        if not partitions:
            await self._consumer.topics()
            partitions = self._consumer.partitions_for_topic(QUOTES_TOPIC) or set()
        assigned = [TopicPartition(QUOTES_TOPIC, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for tp in assigned:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self._consumer:
            now = time.time_ns()
            event = market_pb2.QuoteEvent.FromString(record.value)
            quote_ns = event.quote.time.ToNanoseconds()
            if self.window[0] <= quote_ns < self.window[1]:
                self.latencies.append(now - quote_ns)
                self.publish_latencies.append(now - event.publish_time.ToNanoseconds())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


class Walk:
    def __init__(self) -> None:
        self._rng = random.Random(7)
        self._price = {symbol: Decimal(start) for symbol, _, start in SYMBOLS}
        self._places = {symbol: Decimal(1).scaleb(-places) for symbol, places, _ in SYMBOLS}

    def request(self, symbol: str) -> market_pb2.PublishQuotesRequest:
        tick = self._places[symbol]
        price = max(self._price[symbol] + tick * self._rng.randint(-3, 3), tick * 100)
        self._price[symbol] = price
        request = market_pb2.PublishQuotesRequest(source="bench")
        request.quote.symbol = symbol
        request.quote.bid = str(price)
        request.quote.ask = str(price + tick * 2)
        request.quote.time.FromNanoseconds(time.time_ns())
        return request


async def publish(
    stub: market_pb2_grpc.MarketDataServiceStub, walk: Walk, rate: float, seconds: float
) -> int:
    """Quotes round-robin over the symbols at `rate`/s (paced on absolute times, so a late
    wake-up does not lower the rate); returns how many were accepted."""
    total = int(rate * seconds)

    async def requests() -> AsyncIterator[market_pb2.PublishQuotesRequest]:
        start = time.monotonic()
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield walk.request(SYMBOLS[i % len(SYMBOLS)][0])

    response = await stub.PublishQuotes(
        requests(), metadata=((SERVICE_TOKEN_HEADER, SERVICE_TOKEN),), timeout=seconds + 30
    )
    return int(response.accepted)


async def start_market(
    root: Path, database_url: str, bootstrap: str, port: int, metrics_port: int
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        # On a port of its own; EXNESS_METRICS=off (inherited) turns metrics off.
        "EXNESS_MARKET_METRICS_PORT": str(metrics_port),
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EXNESS_SERVICE_TOKEN": SERVICE_TOKEN,
        "EXNESS_DATA_DIR": str(root / "market"),
        "EXNESS_LOG_LEVEL": "WARNING",
    }
    log = (root / "market.log").open("ab")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        "market",
        "--role",
        "api",
        "--port",
        str(port),
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )


async def wait_ready(stub: market_pb2_grpc.MarketDataServiceStub, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await stub.ListInstruments(market_pb2.ListInstrumentsRequest(), timeout=2)
            return
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def scrape_every_second(metrics_port: int) -> int:
    """Scrapes MarketData's /metrics every second (as Prometheus would) until cancelled."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    count = 0
    try:
        while True:
            await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
            count += 1
            await asyncio.sleep(1.0)
    except asyncio.CancelledError:
        return count


async def scraper_count(task: asyncio.Task[int]) -> int:
    try:
        return await task
    except asyncio.CancelledError:
        return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(args: argparse.Namespace) -> None:
    root = infra.session_root()
    postgres = infra.start_postgres(root)
    broker = infra.start_broker(root)
    processes: list[asyncio.subprocess.Process] = []
    try:
        await ensure_topics(broker.bootstrap)
        port, metrics_port = infra.free_port(), infra.free_port()
        market = await start_market(root, postgres.url, broker.bootstrap, port, metrics_port)
        processes.append(market)
        address = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(address)
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        await wait_ready(stub)
        progress(f"MarketData listening on {address}")
        walk = Walk()
        # One quote per symbol first: every subscriber then gets a snapshot message at once,
        # which is how the workers know all streams are registered.
        await publish(stub, walk, rate=100, seconds=len(SYMBOLS) / 100)
        bare = BareConsumer(broker.bootstrap)
        await bare.start()
        progress("snapshot quotes published, bare consumer positioned")

        per_worker = [
            args.subscribers // args.workers + (1 if w < args.subscribers % args.workers else 0)
            for w in range(args.workers)
        ]
        workers = []
        first = 0
        for count in per_worker:
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.fanout_quotes", "--worker", address,
                    str(first), str(count), str(args.symbols_per_subscriber),
                    cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                )
            )  # fmt: skip
            first += count
        processes.extend(workers)
        for process in workers:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if line.strip() != b"ready":
                raise RuntimeError(f"subscriber worker failed to start: {line!r}")

        progress(f"{args.subscribers} subscribers streaming; publishing for {args.seconds} s")
        start_ns = time.time_ns()
        bare.window[0] = start_ns
        for process in workers:
            assert process.stdin is not None
            process.stdin.write(f"start {start_ns}\n".encode())
            await process.stdin.drain()
        market_cpu = cpu_seconds(market.pid)
        scraper = None
        if args.scrape_metrics and metrics_enabled():
            scraper = asyncio.create_task(scrape_every_second(metrics_port))
        accepted = await publish(stub, walk, args.rate, args.seconds)
        if scraper is not None:
            scraper.cancel()
            progress(f"MarketData /metrics scraped {await scraper_count(scraper)} times")
        end_ns = time.time_ns()
        market_cpu = cpu_seconds(market.pid) - market_cpu
        bare.window[1] = end_ns
        for process in workers:
            assert process.stdin is not None
            process.stdin.write(f"stop {end_ns} 1.0\n".encode())
            await process.stdin.drain()
        latencies: list[int] = []
        worker_cpu: list[float] = []
        for process in workers:
            assert process.stdout is not None
            result = json.loads(await asyncio.wait_for(process.stdout.read(), 60))
            latencies.extend(result["latencies_ns"])
            worker_cpu.append(result["cpu_s"])
            await process.wait()
        await asyncio.sleep(0.2)
        await bare.stop()
        await channel.close()
    finally:
        try:
            for process in processes:
                if process.returncode is None:
                    process.terminate()
            for process in processes:
                await asyncio.wait_for(process.wait(), 15)
        finally:  # even when interrupted while waiting
            broker.stop()
            postgres.stop()

    window_s = (end_ns - start_ns) / 1e9
    per_symbol = accepted / len(SYMBOLS)
    expected = per_symbol * args.subscribers * args.symbols_per_subscriber
    latencies.sort()
    bare_sorted = sorted(bare.latencies)
    publish_sorted = sorted(bare.publish_latencies)
    p99 = percentile(latencies, 0.99)
    print(
        f"quote fan-out: {args.subscribers} StreamQuotes subscribers ({args.symbols_per_subscriber}"
        f" symbol(s) each, {args.workers} client processes), {accepted} quotes in {window_s:.1f} s"
        f" ({accepted / window_s:.1f}/s)"
    )
    print(f"{'path':<26}{'msgs/s':>10}{'delivered':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    print(
        f"{'StreamQuotes subscribers':<26}{len(latencies) / window_s:>10,.0f}"
        f"{len(latencies) / expected:>10.1%} {ms(percentile(latencies, 0.5)):>8}"
        f"{ms(p99):>9}{ms(latencies[-1] if latencies else math.nan):>9}"
    )
    print(
        f"{'bare aiokafka consumer':<26}{len(bare_sorted) / window_s:>10,.0f}"
        f"{len(bare_sorted) / max(accepted, 1):>10.1%} {ms(percentile(bare_sorted, 0.5)):>8}"
        f"{ms(percentile(bare_sorted, 0.99)):>9}"
        f"{ms(bare_sorted[-1] if bare_sorted else math.nan):>9}"
    )
    print(
        f"  (bare consumer from publish_time: p50 {ms(percentile(publish_sorted, 0.5))} ms,"
        f" p99 {ms(percentile(publish_sorted, 0.99))} ms)"
    )
    print(
        f"CPU during the window: MarketData {market_cpu / window_s:.0%} of a core, subscriber"
        f" workers {' '.join(f'{c / window_s:.0%}' for c in worker_cpu)}"
    )
    print(
        f"p99 ratio subscribers/bare consumer: {p99 / percentile(bare_sorted, 0.99):.2f};"
        f" p99 {ms(p99)} ms {'meets' if p99 < TARGET_P99_MS * 1e6 else 'MISSES'} the target"
        f" of < {TARGET_P99_MS:.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--symbols-per-subscriber", type=int, default=1, choices=range(1, 6))
    parser.add_argument("--rate", type=float, default=50.0, help="quotes/s in total")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="subscriber processes")
    parser.add_argument(
        "--scrape-metrics",
        action="store_true",
        help="scrape MarketData's /metrics every second while publishing (unless EXNESS_METRICS=off)",
    )
    parser.add_argument("--worker", nargs=4, metavar=("ADDRESS", "FIRST", "COUNT", "PER"))
    args = parser.parse_args()
    if args.worker:
        address, first, count, per = args.worker
        asyncio.run(worker(address, int(first), int(count), int(per)))
    else:
        asyncio.run(main(args))
