"""What metrics cost: PlaceOrder orders/s and latency on two Trading engines side by side, one
with metrics on (EXNESS_METRICS=on, its /metrics scraped every second, five times what
`exness up`'s Prometheus does) and one with them off (EXNESS_METRICS=off: no RPC interceptor,
no endpoint), in alternating rounds so both see the same machine load. Prints best and
spread (min..max over rounds) of each, and the cost of metrics on the best round.
Target: at most 10% fewer orders/s with metrics on.

The engines own shards 0 and 1 of the same database (different users), so they never touch
the same rows. `--fanout N` afterwards runs bench.fanout_quotes N times each way (MarketData
with metrics on and scraped, then off) and prints its p99 and MarketData CPU per run.

`python -m bench.metrics_cost [--rounds 5] [--seconds 5] [--clients 64] [--fanout 0]
[--fanout-subscribers 1000] [--skip-orders]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from exness.trading.v1 import trading_pb2 as pb
from exness.trading.v1 import trading_pb2_grpc

from bench.place_order_grpc import drive, pct, publish_quotes, spawn, wait_healthy
from kit.data.kafka import ensure_topics
from services.auth.keys import Keyring, new_key_file
from services.auth.tokens import AccessTokenIssuer
from tests.support import infra
from tests.support.infra import free_port

ROOT = Path(__file__).resolve().parents[1]
TARGET_COST = 0.10
SCRAPE_EVERY_S = 1.0


@dataclass
class Variant:
    name: str
    shard: int
    metrics: bool
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    rates: list[float] = field(default_factory=list)
    # Engine CPU milliseconds per order, per round: barely moved by the load of other
    # processes on the machine, unlike orders/s.
    cpu_ms: list[float] = field(default_factory=list)
    pid: int = 0
    latencies: list[float] = field(default_factory=list)
    scrapes: int = 0


async def scrape_loop(variant: Variant, stop: asyncio.Event) -> None:
    url = f"http://127.0.0.1:{variant.metrics_port}/metrics"
    while not stop.is_set():
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        assert b"grpc_server_handled_total" in body
        variant.scrapes += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SCRAPE_EVERY_S)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spread(values: list[float]) -> str:
    return (
        f"best {max(values):,.0f}  median {statistics.median(values):,.0f}  min {min(values):,.0f}"
    )


async def place_orders(rounds: int, seconds: float, clients: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-metrics-cost-"))
    postgres = infra.start_postgres(workdir)
    broker = infra.start_broker(workdir)
    processes: list[subprocess.Popen[bytes]] = []
    stop = asyncio.Event()
    try:
        await ensure_topics(broker.bootstrap)
        keys = workdir / "keys"
        new_key_file(keys)
        auth_port = free_port()
        base = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "EXNESS_SIGNING_KEYS": str(keys),
            "EXNESS_DATA_DIR": str(workdir),
            "EXNESS_AUTH_ADDR": f"127.0.0.1:{auth_port}",
            "EXNESS_AUTH_METRICS_PORT": "0",
            "EXNESS_SHARD_COUNT": "2",
            "EXNESS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
        }
        log = workdir / "servers.log"
        processes.append(spawn(["-m", "cli.main", "auth", "--port", str(auth_port)], base, log))
        variants = [Variant("metrics on", 0, True), Variant("metrics off", 1, False)]
        for v in variants:
            env = {
                **base,
                "EXNESS_SHARD_ID": str(v.shard),
                "EXNESS_METRICS": "on" if v.metrics else "off",
                "EXNESS_TRADING_METRICS_PORT": str(v.metrics_port),
            }
            processes.append(
                spawn(["-m", "services.trading.main", "--port", str(v.port)], env, log)
            )
        await wait_healthy(auth_port, processes[0], log)
        for v, process in zip(variants, processes[1:], strict=True):
            await wait_healthy(v.port, process, log)
            v.pid = process.pid
        quotes = asyncio.create_task(publish_quotes(broker.bootstrap, stop))
        issuer = AccessTokenIssuer(
            Keyring.load(keys, create=False), "exness-auth", "exness-api", 3600
        )
        request = pb.PlaceOrderRequest(
            symbol="XAUUSD", side=pb.ORDER_SIDE_BUY, type=pb.ORDER_TYPE_MARKET, volume="0.01"
        )
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{v.port}") for v in variants]
        stubs = [trading_pb2_grpc.TradingServiceStub(c) for c in channels]
        metadata = {
            v.name: [
                (("authorization", f"Bearer {issuer.issue(str(uuid.uuid4()), v.shard)}"),)
                for _ in range(clients)
            ]
            for v in variants
        }
        for v, stub in zip(variants, stubs, strict=True):
            for md in metadata[v.name]:
                await stub.Deposit(pb.DepositRequest(amount="1000000"), metadata=md)
            for _ in range(100):  # until the engine has a fresh quote
                try:
                    await stub.PlaceOrder(request, metadata=metadata[v.name][0])
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)
        scraping = asyncio.create_task(scrape_loop(variants[0], stop))

        def placer(v: Variant, stub: trading_pb2_grpc.TradingServiceStub):  # type: ignore[no-untyped-def]
            async def place(n: int) -> object:
                return await stub.PlaceOrder(request, metadata=metadata[v.name][n])

            return place

        for v, stub in zip(variants, stubs, strict=True):  # warm-up
            await drive(placer(v, stub), clients, 1.0)
        for r in range(rounds):
            # Alternate which goes first, so a trend in machine load favours neither.
            order = list(zip(variants, stubs, strict=True))
            for v, stub in order if r % 2 == 0 else reversed(order):
                cpu = cpu_seconds(v.pid)
                rate, latencies = await drive(placer(v, stub), clients, seconds)
                v.cpu_ms.append((cpu_seconds(v.pid) - cpu) * 1000 / max(len(latencies), 1))
                v.rates.append(rate)
                v.latencies.extend(latencies)
            print(
                f"round {r + 1}: "
                + "  ".join(
                    f"{v.name} {v.rates[-1]:,.0f}/s {v.cpu_ms[-1]:.2f} ms CPU" for v in variants
                ),
                flush=True,
            )
        stop.set()
        await asyncio.gather(quotes, scraping)
        for channel in channels:
            await channel.close()
        on, off = variants
        print(f"\nPlaceOrder, {clients} clients, {rounds} rounds of {seconds:g} s each way")
        for v in variants:
            print(
                f"  {v.name:<12} orders/s {spread(v.rates)}   "
                f"p50 {pct(v.latencies, 50):.2f} ms  p99 {pct(v.latencies, 99):.2f} ms"
            )
        for v in variants:
            print(
                f"  {v.name:<12} engine CPU per order: median {statistics.median(v.cpu_ms):.3f} ms"
                f"  ({min(v.cpu_ms):.3f}..{max(v.cpu_ms):.3f})"
            )
        cpu_cost = statistics.median(on.cpu_ms) / statistics.median(off.cpu_ms) - 1
        print(f"  engine CPU per order with metrics: {cpu_cost:+.1%} (median against median)")
        cost = 1 - max(on.rates) / max(off.rates)
        median_cost = 1 - statistics.median(on.rates) / statistics.median(off.rates)
        noisy = any(
            (max(v.rates) - min(v.rates)) / statistics.median(v.rates) > 0.3 for v in variants
        )
        print(
            f"  /metrics scraped {on.scrapes} times during the run\n"
            f"  cost of metrics: {cost:+.1%} orders/s on the best round, {median_cost:+.1%} on"
            f" the median; {cpu_cost:+.1%} engine CPU per order (target <= {TARGET_COST:.0%}:"
            f" {'MET' if cpu_cost <= TARGET_COST else 'NOT MET'} by CPU per order)"
        )
        if noisy:
            print(
                "  orders/s varied by more than 30% between rounds (a busy machine): only the"
                " CPU per order is conclusive"
            )
    finally:
        stop.set()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.stop()
        postgres.stop()


_P99 = re.compile(r"StreamQuotes subscribers\s+[\d,]+\s+[\d.]+%\s+([\d.]+)\s+([\d.]+)")
_CPU = re.compile(r"MarketData (\d+)% of a core")


def fanout(runs: int, seconds: float, subscribers: int) -> None:
    """bench.fanout_quotes, alternately with MarketData's metrics on and off."""
    results: dict[str, list[tuple[float, float, int]]] = {"on": [], "off": []}
    for r in range(runs):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            env = {**os.environ, "EXNESS_METRICS": mode}
            done = subprocess.run(
                [sys.executable, "-m", "bench.fanout_quotes", "--seconds", str(seconds),
                 "--subscribers", str(subscribers), "--scrape-metrics"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            if done.returncode != 0:  # e.g. workers not ready in time on a busy machine
                print(f"fan-out run {r + 1}, metrics {mode}: failed\n{done.stderr[-1500:]}")
                continue
            out = done.stdout
            p99, cpu = _P99.search(out), _CPU.search(out)
            if p99 is None or cpu is None:
                raise SystemExit(f"unexpected bench.fanout_quotes output:\n{out}")
            results[mode].append((float(p99.group(1)), float(p99.group(2)), int(cpu.group(1))))
            print(f"fan-out run {r + 1}, metrics {mode}: p50 {p99.group(1)} ms  p99"
                  f" {p99.group(2)} ms  MarketData CPU {cpu.group(1)}%", flush=True)  # fmt: skip
    print(f"\nStreamQuotes fan-out, {runs} runs each way")
    for mode, rows in results.items():
        if not rows:
            print(f"  metrics {mode}: no run finished")
            continue
        p99s = [row[1] for row in rows]
        cpus = [row[2] for row in rows]
        print(
            f"  metrics {mode:<4} p99 best {min(p99s):.1f} ms  median {statistics.median(p99s):.1f}"
            f"  worst {max(p99s):.1f};  MarketData CPU median {statistics.median(cpus):.0f}%"
            f" ({min(cpus)}..{max(cpus)}%)"
        )


async def interceptor_cost(rounds: int, calls: int, concurrency: int = 16) -> None:
    """The RPC metrics interceptor alone: a unary echo server in this process, with and
    without it, in alternating rounds; process CPU per call (client and server together, so
    the difference is the interceptor's)."""
    from kit.obs.rpc_metrics import RpcMetrics

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    per_call: dict[str, list[float]] = {"with metrics": [], "without": []}
    servers = {}
    for name, interceptors in (("with metrics", [RpcMetrics()]), ("without", [])):
        server = grpc.aio.server(interceptors=interceptors)
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers[name] = (server, port)
    try:
        for r in range(rounds + 1):  # round 0 warms up
            names = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in names:
                _, port = servers[name]
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    call = channel.unary_unary("/bench.Echo/Echo")

                    async def client(n: int, call: grpc.aio.UnaryUnaryMultiCallable = call) -> None:
                        for _ in range(n):
                            await call(b"x" * 64)

                    started = time.process_time()
                    await asyncio.gather(
                        *(client(calls // concurrency) for _ in range(concurrency))
                    )
                    if r:
                        per_call[name].append((time.process_time() - started) / calls * 1e6)
    finally:
        for server, _ in servers.values():
            await server.stop(None)
    with_m, without = (statistics.median(v) for v in per_call.values())
    print(
        f"RPC metrics interceptor alone ({rounds} rounds of {calls:,} unary calls each way):"
        f" {with_m:.1f} us CPU per call with it, {without:.1f} without"
        f" ({min(per_call['with metrics']):.1f}..{max(per_call['with metrics']):.1f} and"
        f" {min(per_call['without']):.1f}..{max(per_call['without']):.1f});"
        f" +{with_m - without:.1f} us per call ({with_m / without - 1:+.1%})\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--fanout", type=int, default=0, help="fan-out runs each way")
    parser.add_argument("--fanout-seconds", type=float, default=10.0)
    parser.add_argument("--fanout-subscribers", type=int, default=1000)
    parser.add_argument("--skip-orders", action="store_true", help="only the fan-out runs")
    parser.add_argument("--interceptor-calls", type=int, default=20_000)
    args = parser.parse_args()
    if not args.skip_orders:
        asyncio.run(interceptor_cost(args.rounds, args.interceptor_calls))
        asyncio.run(place_orders(args.rounds, args.seconds, args.clients))
    if args.fanout:
        fanout(args.fanout, args.fanout_seconds, args.fanout_subscribers)


if __name__ == "__main__":
    main()
