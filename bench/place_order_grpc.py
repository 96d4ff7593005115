"""Durable PlaceOrder over gRPC at 64 concurrent clients vs a bare grpc.aio unary echo server.

Starts real processes: PostgreSQL and the Kafka-protocol broker (embedded, unless DATABASE_URL
and KAFKA_BOOTSTRAP_SERVERS are set), the Auth service (for its JWKS), the Trading engine
(`python -m services.trading.main`), and an echo server (this module with --serve-echo). The
same client drives both; every PlaceOrder answer means the order was committed to PostgreSQL.
Target: engine orders/s >= 0.5 x echo calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psutil
import psycopg
from exness.market.v1 import market_pb2
from exness.trading.v1 import trading_pb2 as pb
from exness.trading.v1 import trading_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from kit.data.kafka import QUOTES_TOPIC, ensure_topics, make_producer
from kit.data.migrations import migrate
from kit.processes import spawn as start_child
from kit.processes import wait_ready
from kit.rpc.probes import grpc_serving
from services.auth.keys import Keyring, new_key_file
from services.auth.tokens import AccessTokenIssuer
from tests.support import infra
from tests.support.infra import free_port

ROOT = Path(__file__).resolve().parents[1]
ECHO_METHOD = "/bench.Echo/Echo"
TARGET_RATIO = 0.5


async def serve_echo(port: int) -> None:
    def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_child([sys.executable, *args], log, env=env, cwd=ROOT)


async def wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the server on `port` serves gRPC health (StartError with its log otherwise)."""
    await asyncio.to_thread(
        wait_ready,
        process,
        lambda: grpc_serving(f"127.0.0.1:{port}", ""),
        name=f"the server on port {port}",
        log_path=log,
        timeout_s=60,
        interval_s=0.2,
    )


async def wait_port(port: int) -> None:
    for _ in range(300):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


async def drive(
    call: Callable[[int], Awaitable[object]], clients: int, seconds: float
) -> tuple[float, list[float]]:
    """Each client calls in a loop for `seconds`; returns (calls/s, latencies in ms)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call(n)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def commit_counts(database_url: str) -> tuple[int, int]:
    """(orders stored, transactions that stored them): each row's xmin is its transaction."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*), count(DISTINCT xmin::text) FROM trading_orders")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def engine_cpu_s(process: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) the engine process has used so far."""
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def publish_quotes(bootstrap: str, stop: asyncio.Event) -> None:
    producer = make_producer(bootstrap, linger_ms=0)
    await producer.start()
    try:
        while not stop.is_set():
            stamp = Timestamp()
            stamp.FromDatetime(datetime.now(UTC))
            event = market_pb2.QuoteEvent(
                quote=market_pb2.Quote(symbol="XAUUSD", bid="2400.00", ask="2400.20", time=stamp),
                source="bench",
            )
            await producer.send_and_wait(
                QUOTES_TOPIC, key=b"XAUUSD", value=event.SerializeToString()
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        await producer.stop()


async def run(clients: int, seconds: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-place-order-"))
    owned: list[object] = []
    processes: list[subprocess.Popen[bytes]] = []
    stop_quotes = asyncio.Event()
    try:
        database_url = os.environ.get("DATABASE_URL", "")
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        if database_url:
            migrate(database_url)
        else:
            postgres = infra.start_postgres(workdir)  # migrated
            owned.append(postgres)
            database_url = postgres.url
        if not bootstrap:
            broker = infra.start_broker(workdir)
            owned.append(broker)
            bootstrap = broker.bootstrap
        await ensure_topics(bootstrap)
        keys = workdir / "keys"
        new_key_file(keys)
        auth_port, engine_port, echo_port = free_port(), free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EXNESS_SIGNING_KEYS": str(keys),
            "EXNESS_DATA_DIR": str(workdir),
            "EXNESS_AUTH_ADDR": f"127.0.0.1:{auth_port}",
            "EXNESS_LOG_LEVEL": "WARNING",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
        }
        log = workdir / "servers.log"
        processes.append(spawn(["-m", "cli.main", "auth", "--port", str(auth_port)], env, log))
        # BENCH_PROFILE_ENGINE=<file> runs the engine under cProfile (written on exit).
        profile = os.environ.get("BENCH_PROFILE_ENGINE")
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        processes.append(
            spawn([*prefix, "-m", "services.trading.main", "--port", str(engine_port)], env, log)
        )
        processes.append(
            spawn(["-m", "bench.place_order_grpc", "--serve-echo", str(echo_port)], env, log)
        )
        await wait_healthy(auth_port, processes[0], log)
        await wait_healthy(engine_port, processes[1], log)
        await wait_port(echo_port)
        quotes = asyncio.create_task(publish_quotes(bootstrap, stop_quotes))

        keyring = Keyring.load(keys, create=False)
        issuer = AccessTokenIssuer(keyring, "exness-auth", "exness-api", 3600)
        users = [str(uuid.uuid4()) for _ in range(clients)]
        md = [(("authorization", f"Bearer {issuer.issue(u, 0)}"),) for u in users]
        request = pb.PlaceOrderRequest(
            symbol="XAUUSD", side=pb.ORDER_SIDE_BUY, type=pb.ORDER_TYPE_MARKET, volume="0.01"
        )
        payload = request.SerializeToString()
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{engine_port}") as engine_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}") as echo_channel,
        ):
            stub = trading_pb2_grpc.TradingServiceStub(engine_channel)
            echo = echo_channel.unary_unary(ECHO_METHOD)
            for m in md:
                await stub.Deposit(pb.DepositRequest(amount="1000000"), metadata=m)
            for _ in range(100):  # until the engine has a fresh quote
                try:
                    await stub.PlaceOrder(request, metadata=md[0])
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)

            async def place(n: int) -> object:
                return await stub.PlaceOrder(request, metadata=md[n])

            async def bounce(n: int) -> object:
                return await echo(payload)

            await drive(bounce, clients, 1.0)  # warm-up
            await drive(place, clients, 1.0)
            echo_rate, echo_lat = await drive(bounce, clients, seconds)
            committed = await commit_counts(database_url)
            engine_cpu = engine_cpu_s(processes[1])
            engine_rate, engine_lat = await drive(place, clients, seconds)
            engine_cpu = engine_cpu_s(processes[1]) - engine_cpu
            orders, commits = (
                a - b for a, b in zip(await commit_counts(database_url), committed, strict=True)
            )
        stop_quotes.set()
        await quotes
        ratio = engine_rate / echo_rate
        print(f"{clients} concurrent clients, {seconds:.0f} s each")
        print(
            f"echo (bare grpc.aio unary): {echo_rate:,.0f} calls/s  "
            f"p50 {pct(echo_lat, 50):.2f} ms  p99 {pct(echo_lat, 99):.2f} ms"
        )
        print(
            f"PlaceOrder (durable):       {engine_rate:,.0f} orders/s "
            f"p50 {pct(engine_lat, 50):.2f} ms  p99 {pct(engine_lat, 99):.2f} ms"
        )
        # CPU time, unlike orders/s, does not depend on what else the machine runs.
        print(f"engine CPU per order: {engine_cpu * 1000 / max(orders, 1):.3f} ms")
        print(
            f"group commit: {orders:,} orders in {commits:,} transactions "
            f"({orders / max(commits, 1):.1f} per commit)"
        )
        print(
            f"ratio engine/echo: {ratio:.2f} (target >= {TARGET_RATIO}: "
            f"{'MET' if ratio >= TARGET_RATIO else 'NOT MET'})"
        )
    finally:
        stop_quotes.set()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for thing in reversed(owned):
            thing.stop()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve-echo", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo is not None:
        asyncio.run(serve_echo(args.serve_echo))
        return
    asyncio.run(run(args.clients, args.seconds))


if __name__ == "__main__":
    main()
