"""Kill -9 the engine process under concurrent PlaceOrder load, restart it: every acknowledged
order and deposit is in the database, every ledger sums to its balance, retries still get their
first result, and `trading.events` (read by kcat, an independent client) carries every journal
event at least once, in sequence per account. SIGTERM under the same load drains: every call in
flight is answered."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from exness.market.v1 import market_pb2
from exness.trading.v1 import trading_pb2 as pb
from exness.trading.v1 import trading_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from cli.devstack.postgres import EmbeddedPostgres
from kit.data.db import open_pool
from kit.data.kafka import EVENTS_TOPIC, QUOTES_TOPIC, make_producer
from kit.data.kafka_probe import probe_offsets
from tests.support.infra import free_port, fresh_database
from tests.trading.conftest import AuthHandle

SHARD = 2  # its own shard: in-process engines of other tests own shards 0 and 1
DRAIN_SHARD = 3
# Engines check their shard against the count the database was created with: these get a
# database of their own, created for enough shards.
SHARD_COUNT = max(SHARD, DRAIN_SHARD) + 1
ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 64
USERS = 16

pytestmark = pytest.mark.slow


class EngineProcess:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.trading.main", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    async def wait_serving(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"engine exited: {self.log.read_text()[-3000:]}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError("engine never became healthy")
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


async def _publish_quotes(producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        stamp = Timestamp()
        stamp.FromDatetime(datetime.now(UTC))
        event = market_pb2.QuoteEvent(
            quote=market_pb2.Quote(symbol="XAUUSD", bid="2400.00", ask="2400.20", time=stamp),
            source="crash-test",
        )
        await producer.send_and_wait(QUOTES_TOPIC, key=b"XAUUSD", value=event.SerializeToString())
        await asyncio.sleep(0.2)


# kcat 1.7 (librdkafka 2.0.2) cannot parse the embedded broker's ApiVersions v3 and ListOffsets
# replies (see tests/market/test_publish.py): version probing off, absolute offsets, and the
# per-partition end offsets taken from aiokafka.
KCAT_COMPAT = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"]


async def _read_events_with_kcat(bootstrap: str) -> list[tuple[bytes, pb.AccountEvent]]:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is needed (apt-get install kcat)"
    # Log ends from a fetch: the embedded broker's ListOffsets under-reports them (see
    # kit.kafka_probe), which would make kcat stop before the last batch's later records.
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await probe.start()
    try:
        partitions = probe.partitions_for_topic(EVENTS_TOPIC) or set()
        points = await probe_offsets(probe, EVENTS_TOPIC, {p: 0 for p in partitions})
    finally:
        await probe.stop()
    assert set(points) == set(partitions), "the broker did not report every log end"
    events = []
    for partition, point in sorted(points.items()):
        if point.log_end == 0:
            continue
        process = await asyncio.create_subprocess_exec(
            kcat,
            "-b",
            bootstrap,
            *KCAT_COMPAT,
            "-C",
            "-t",
            EVENTS_TOPIC,
            "-p",
            str(partition),
            "-o",
            "0",
            "-c",
            str(point.log_end),
            "-q",
            "-f",
            "%k|%S|%s",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()[-2000:]
        pos = 0
        while pos < len(out):
            bar = out.index(b"|", pos)
            bar2 = out.index(b"|", bar + 1)
            size = int(out[bar + 1 : bar2])
            events.append(
                (out[pos:bar], pb.AccountEvent.FromString(out[bar2 + 1 : bar2 + 1 + size]))
            )
            pos = bar2 + 1 + size
    return events


@pytest.fixture(scope="module")
def crash_database_url(postgres: EmbeddedPostgres) -> str:
    return fresh_database(postgres.url, "crash")


@pytest.fixture
async def crash_pool(crash_database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(crash_database_url, max_size=3)
    yield pool
    await pool.close()


async def test_sigkill_under_load_loses_nothing_acknowledged(
    auth: AuthHandle,
    crash_database_url: str,
    kafka_bootstrap: str,
    crash_pool: AsyncConnectionPool,
    session_dir: Path,
) -> None:
    database_url, db_pool = crash_database_url, crash_pool
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EXNESS_AUTH_ADDR": auth.settings.auth_addr,
        "EXNESS_SHARD_ID": str(SHARD),
        "EXNESS_SHARD_COUNT": str(SHARD_COUNT),
        "EXNESS_DATA_DIR": str(session_dir / "crash-engine"),
        "EXNESS_LOG_LEVEL": "WARNING",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
    }
    log = session_dir / "crash-engine.log"
    engine = EngineProcess(env, port, log)
    producer = make_producer(kafka_bootstrap, linger_ms=0)
    await producer.start()
    stop_quotes = asyncio.Event()
    quotes = asyncio.create_task(_publish_quotes(producer, stop_quotes))
    try:
        await engine.wait_serving()
        users = [str(uuid.uuid4()) for _ in range(USERS)]
        metadata = {u: (("authorization", f"Bearer {auth.token(u, SHARD)}"),) for u in users}
        acked_orders: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        acked_deposits: dict[str, list[str]] = defaultdict(list)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trading_pb2_grpc.TradingServiceStub(channel)
            for u in users:
                reply = await stub.Deposit(pb.DepositRequest(amount="100000"), metadata=metadata[u])
                acked_deposits[u].append(reply.entry.entry_id)
            for _ in range(200):  # until the engine has a fresh XAUUSD quote
                if await _quoted(stub, metadata[users[0]]):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the engine never got a fresh XAUUSD quote")

            async def client(n: int) -> None:
                u = users[n % USERS]
                i = 0
                while True:
                    i += 1
                    key = f"c{n}-{i}"
                    try:
                        if i % 10 == 0:
                            dep = await stub.Deposit(
                                pb.DepositRequest(amount="1.25"), metadata=metadata[u], timeout=10
                            )
                            acked_deposits[u].append(dep.entry.entry_id)
                            continue
                        reply = await stub.PlaceOrder(
                            pb.PlaceOrderRequest(
                                symbol="XAUUSD",
                                side=pb.ORDER_SIDE_BUY,
                                type=pb.ORDER_TYPE_MARKET,
                                volume="0.01",
                                client_order_id=key,
                            ),
                            metadata=metadata[u],
                            timeout=10,
                        )
                        acked_orders[u].append(
                            (key, reply.order.order_id, reply.position.position_id)
                        )
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() in (
                            grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.CANCELLED,
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                        ):
                            return  # the engine is gone
                        raise

            load = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
            await _until(lambda: sum(len(v) for v in acked_orders.values()) > 100)
            engine.kill()  # SIGKILL mid-load
            await asyncio.wait(load, timeout=20)
            for task in load:
                task.result()  # no unexpected error while it was alive

        # Everything acknowledged is in the database, and every ledger sums to its balance.
        async with db_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT o.order_id::text, o.client_order_id, o.status, o.position_id::text"
                " FROM trading_orders o JOIN trading_accounts a USING (account_id)"
                " WHERE a.shard = %s",
                (SHARD,),
            )
            stored = {row[0]: row for row in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT entry_id::text FROM trading_ledger l JOIN trading_accounts a"
                " USING (account_id) WHERE a.shard = %s",
                (SHARD,),
            )
            entries = {row[0] for row in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT a.account_id, a.balance, coalesce(sum(l.amount), 0)"
                " FROM trading_accounts a LEFT JOIN trading_ledger l USING (account_id)"
                " WHERE a.shard = %s GROUP BY a.account_id, a.balance",
                (SHARD,),
            )
            balances = await cur.fetchall()
        for u in users:
            for key, order_id, position_id in acked_orders[u]:
                assert order_id in stored, f"acknowledged order {key} lost"
                assert stored[order_id][1:] == (key, 2, position_id)
            for entry_id in acked_deposits[u]:
                assert entry_id in entries, "acknowledged deposit lost"
        assert len(balances) == USERS
        for account_id, balance, ledger in balances:
            assert balance == ledger, f"account {account_id}: balance {balance} != ledger {ledger}"

        # Restart: memory rebuilt from the database; retries get their first result.
        engine = EngineProcess(env, port, log)
        await engine.wait_serving()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trading_pb2_grpc.TradingServiceStub(channel)
            u = next(u for u in users if acked_orders[u])
            key, order_id, _ = acked_orders[u][-1]
            retry = await stub.PlaceOrder(
                pb.PlaceOrderRequest(
                    symbol="XAUUSD",
                    side=pb.ORDER_SIDE_BUY,
                    type=pb.ORDER_TYPE_MARKET,
                    volume="0.01",
                    client_order_id=key,
                ),
                metadata=metadata[u],
            )
            assert retry.order.order_id == order_id
            listed = await stub.ListPositions(pb.ListPositionsRequest(), metadata=metadata[u])
            async with db_pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT position_id::text FROM trading_positions WHERE closed_at IS NULL"
                    " AND account_id = (SELECT account_id FROM trading_accounts"
                    " WHERE user_id = %s)",
                    (u,),
                )
                open_in_db = {row[0] for row in await cur.fetchall()}
            # Memory rebuilt exactly from the database, which holds every acknowledged position.
            assert {p.position_id for p in listed.positions} == open_in_db
            assert {p for _, _, p in acked_orders[u]} <= open_in_db

        # trading.events holds every journal event of this shard, in sequence per account.
        async with db_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sequence, account_id::text FROM trading_journal WHERE shard = %s", (SHARD,)
            )
            journal: dict[int, str] = dict(await cur.fetchall())
        deadline = time.monotonic() + 60
        while True:
            seen = [
                (k, e)
                for k, e in await _read_events_with_kcat(kafka_bootstrap)
                if int(e.account_id or 0) >> 48 == SHARD
            ]
            sequences = {e.sequence for _, e in seen}
            if set(journal) <= sequences or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        missing = set(journal) - sequences
        assert not missing, f"{len(missing)} journal events never reached trading.events"
        first_seen: dict[bytes, list[int]] = defaultdict(list)
        dedup: set[int] = set()
        for raw_key, event in seen:
            assert raw_key == event.account_id.encode()
            assert journal.get(event.sequence) == event.account_id
            if event.sequence not in dedup:
                dedup.add(event.sequence)
                first_seen[raw_key].append(event.sequence)
        for raw_key, sequence_list in first_seen.items():
            assert sequence_list == sorted(sequence_list), f"account {raw_key!r} out of order"
    finally:
        stop_quotes.set()
        await quotes
        await producer.stop()
        engine.stop()


async def _until(ready: Callable[[], bool], timeout_s: float = 60) -> None:
    """Waits until the load is well under way, however busy the machine is."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, "the load never got going"
        await asyncio.sleep(0.05)


async def _quoted(
    stub: trading_pb2_grpc.TradingServiceStub, md: tuple[tuple[str, str], ...]
) -> bool:
    """Whether the engine has a fresh XAUUSD quote: probed with an order it must refuse for
    its size (INVALID_ARGUMENT comes after the quote checks: NO_QUOTE / STALE_QUOTE)."""
    try:
        await stub.PlaceOrder(
            pb.PlaceOrderRequest(
                symbol="XAUUSD", side=pb.ORDER_SIDE_BUY, type=pb.ORDER_TYPE_MARKET, volume="0.001"
            ),
            metadata=md,
        )
    except grpc.aio.AioRpcError as exc:
        return bool(exc.code() == grpc.StatusCode.INVALID_ARGUMENT)
    raise AssertionError("an order below the minimum volume was accepted")


async def test_sigterm_under_load_answers_every_call_in_flight(
    auth: AuthHandle,
    crash_database_url: str,
    kafka_bootstrap: str,
    crash_pool: AsyncConnectionPool,
    session_dir: Path,
) -> None:
    """SIGTERM mid-load: every call the engine took is answered (none CANCELLED), the ones it
    answered are in the database, and it exits cleanly within its grace period."""
    database_url, db_pool = crash_database_url, crash_pool
    grace_s = 10
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EXNESS_AUTH_ADDR": auth.settings.auth_addr,
        "EXNESS_SHARD_ID": str(DRAIN_SHARD),
        "EXNESS_SHARD_COUNT": str(SHARD_COUNT),
        "EXNESS_DATA_DIR": str(session_dir / "drain-engine"),
        "EXNESS_LOG_LEVEL": "WARNING",
        "EXNESS_SHUTDOWN_GRACE": str(grace_s),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'gen' / 'python'}",
    }
    engine = EngineProcess(env, port, session_dir / "drain-engine.log")
    producer = make_producer(kafka_bootstrap, linger_ms=0)
    await producer.start()
    stop_quotes = asyncio.Event()
    quotes = asyncio.create_task(_publish_quotes(producer, stop_quotes))
    try:
        await engine.wait_serving()
        users = [str(uuid.uuid4()) for _ in range(USERS)]
        metadata = {u: (("authorization", f"Bearer {auth.token(u, DRAIN_SHARD)}"),) for u in users}
        codes: list[grpc.StatusCode] = []
        acked: list[str] = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = trading_pb2_grpc.TradingServiceStub(channel)
            for u in users:
                await stub.Deposit(pb.DepositRequest(amount="100000"), metadata=metadata[u])
            for _ in range(200):
                if await _quoted(stub, metadata[users[0]]):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the engine never got a fresh XAUUSD quote")

            async def client(n: int) -> None:
                u = users[n % USERS]
                i = 0
                while True:
                    i += 1
                    try:
                        reply = await stub.PlaceOrder(
                            pb.PlaceOrderRequest(
                                symbol="XAUUSD",
                                side=pb.ORDER_SIDE_BUY,
                                type=pb.ORDER_TYPE_MARKET,
                                volume="0.01",
                                client_order_id=f"d{n}-{i}",
                            ),
                            metadata=metadata[u],
                            timeout=30,
                        )
                    except grpc.aio.AioRpcError as exc:
                        codes.append(exc.code())
                        return
                    codes.append(grpc.StatusCode.OK)
                    acked.append(reply.order.order_id)

            load = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
            await _until(lambda: len(acked) > 100)
            signalled = time.monotonic()
            engine.process.send_signal(signal.SIGTERM)
            await asyncio.wait(load, timeout=grace_s + 10)
            exit_code = await asyncio.to_thread(engine.process.wait, grace_s + 10)
            exited_after_s = time.monotonic() - signalled
            for task in load:
                task.result()
        failures = [c for c in codes if c != grpc.StatusCode.OK]
        # Each client ends on its first failure: a call refused because the engine is going
        # away (UNAVAILABLE) is safe to retry elsewhere; a CANCELLED call was cut mid-way.
        assert set(failures) <= {grpc.StatusCode.UNAVAILABLE}, collections.Counter(failures)
        assert exit_code == 0
        assert exited_after_s < grace_s + 5
        async with db_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT o.order_id::text FROM trading_orders o JOIN trading_accounts a"
                " USING (account_id) WHERE a.shard = %s",
                (DRAIN_SHARD,),
            )
            stored = {row[0] for row in await cur.fetchall()}
        assert set(acked) <= stored, "an acknowledged order was lost"
    finally:
        stop_quotes.set()
        await quotes
        await producer.stop()
        engine.stop()
