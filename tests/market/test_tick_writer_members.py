"""Tick writer members that come and go: `exness market --role tick-writer` processes share the
partitions of `market.quotes` through leases in PostgreSQL, while quotes keep arriving. A member
stopped cleanly hands its partitions on at once, a killed one when its leases expire, and when
every member is gone and several start together they split the topic again (the case where the
embedded broker's consumer groups stalled). Every quote published is stored once: rows are
counted against what was published, per partition.

Runs on a broker of its own, so its `market.quotes` holds only this test's quotes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from exness.market.v1 import market_pb2
from psycopg_pool import AsyncConnectionPool

from cli.devstack.broker import EmbeddedBroker
from kit.data.kafka import QUOTES_TOPIC, TOPIC_PARTITIONS, ensure_topics, make_producer
from services.market.tick_writer import TICK_WRITER_GROUP
from tests.support.infra import free_port
from tests.support.processes import start_exness

pytestmark = pytest.mark.asyncio(loop_scope="session")

PARTITIONS = TOPIC_PARTITIONS[QUOTES_TOPIC]
SYMBOLS = [f"ZTM{p}" for p in range(PARTITIONS)]  # one per partition
# Each step must settle well within this; the embedded broker's group stall ran for minutes.
SETTLE_S = 30.0


@pytest.fixture(scope="module")
def members_broker(session_dir: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(port=free_port(), log_path=session_dir / "members-broker.log")
    broker.start()
    yield broker
    broker.stop()


class Members:
    """`exness market --role tick-writer` processes, by name."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        self.running[name] = start_exness(
            ["market", "--role", "tick-writer"], self.env, self.logs / f"tick-writer-{name}.log"
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.running.pop(name)
        process.send_signal(sig)
        process.wait(30)

    def pid_of(self, member: str) -> int:
        return int(member.split("-")[-2])

    def name_of(self, member: str) -> str | None:
        pids = {p.pid: name for name, p in self.running.items()}
        return pids.get(self.pid_of(member))

    def stop_all(self) -> None:
        for name in list(self.running):
            with contextlib.suppress(Exception):
                self.stop(name, signal.SIGKILL)


async def _owners(pool: AsyncConnectionPool) -> dict[int, str | None]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT partition, owner FROM partition_leases WHERE consumer = %s AND topic = %s"
            " AND (expires_at IS NULL OR expires_at > now())",
            (TICK_WRITER_GROUP, QUOTES_TOPIC),
        )
        return {int(p): owner for p, owner in await cur.fetchall()}


async def _wait_split(pool: AsyncConnectionPool, members: Members, names: set[str]) -> None:
    """Until every partition is leased to one of `names`, each of them holding its share."""
    deadline = time.monotonic() + SETTLE_S
    seen: dict[int, str | None] = {}
    while time.monotonic() < deadline:
        seen = await _owners(pool)
        holders = {p: members.name_of(o) if o else None for p, o in seen.items()}
        counts = {n: sum(1 for h in holders.values() if h == n) for n in names}
        if (
            len(holders) == PARTITIONS
            and set(holders.values()) == names
            and max(counts.values()) - min(counts.values()) <= 1
        ):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"partitions never split among {sorted(names)}: {seen}")


async def _caught_up(pool: AsyncConnectionPool, published: dict[str, int]) -> None:
    """Until every quote published so far is stored: no partition is left without a writer."""
    target = dict(published)
    deadline = time.monotonic() + SETTLE_S
    rows: dict[str, int] = {}
    while time.monotonic() < deadline:
        rows, _ = await _stored(pool)
        if all(rows.get(s, 0) >= n for s, n in target.items()):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"writing stalled: stored {rows} of {target}")


async def _stored(pool: AsyncConnectionPool) -> tuple[dict[str, int], dict[str, int]]:
    """Per symbol: rows stored, and distinct quotes among them."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT symbol, count(*), count(DISTINCT bid) FROM ticks WHERE symbol = ANY(%s)"
            " GROUP BY symbol",
            (SYMBOLS,),
        )
        rows = await cur.fetchall()
    return {s: int(n) for s, n, _ in rows}, {s: int(d) for s, _, d in rows}


async def test_members_restart_without_lost_or_doubled_ticks(
    members_broker: EmbeddedBroker,
    database_url: str,
    db_pool: AsyncConnectionPool,
    session_dir: Path,
) -> None:
    async with db_pool.connection() as conn:
        await conn.execute("DELETE FROM ticks WHERE symbol = ANY(%s)", (SYMBOLS,))
        await conn.execute("DELETE FROM candles WHERE symbol = ANY(%s)", (SYMBOLS,))
        for table in ("market_consumer_offsets", "partition_leases", "consumer_members"):
            await conn.execute(f"DELETE FROM {table} WHERE consumer = %s", (TICK_WRITER_GROUP,))
    await ensure_topics(members_broker.bootstrap)
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": members_broker.bootstrap,
        "EXNESS_DATA_DIR": str(session_dir / "tick-writer-members"),
        "EXNESS_LOG_FORMAT": "text",
    }
    members = Members({**os.environ, **env}, session_dir)
    published = {s: 0 for s in SYMBOLS}
    stop_publishing = asyncio.Event()

    async def publish() -> None:
        producer = make_producer(members_broker.bootstrap, linger_ms=5)
        await producer.start()
        t0 = time.time_ns()
        try:
            i = 0
            while not stop_publishing.is_set():
                for partition, symbol in enumerate(SYMBOLS):
                    i += 1
                    event = market_pb2.QuoteEvent(source="members-test")
                    event.quote.symbol = symbol
                    event.quote.bid, event.quote.ask = f"{i}.00", f"{i}.50"
                    event.quote.time.FromNanoseconds(t0 + i * 1000)
                    event.publish_time.FromNanoseconds(t0 + i * 1000)
                    await producer.send_and_wait(
                        QUOTES_TOPIC, event.SerializeToString(), partition=partition
                    )
                    published[symbol] += 1
                await asyncio.sleep(0.02)
        finally:
            await producer.stop()

    publisher = asyncio.create_task(publish())
    try:
        members.start("a")
        members.start("b")
        await _wait_split(db_pool, members, {"a", "b"})
        await _caught_up(db_pool, published)
        members.stop("a")  # clean: hands its partitions on at once
        await _wait_split(db_pool, members, {"b"})
        await _caught_up(db_pool, published)
        members.start("c")
        await _wait_split(db_pool, members, {"b", "c"})
        await _caught_up(db_pool, published)
        members.stop("b", signal.SIGKILL)  # its leases expire
        await _wait_split(db_pool, members, {"c"})
        await _caught_up(db_pool, published)
        members.stop("c", signal.SIGKILL)  # every member gone ...
        members.start("d")  # ... and several start together
        members.start("e")
        await _wait_split(db_pool, members, {"d", "e"})
        await _caught_up(db_pool, published)
        stop_publishing.set()
        await publisher

        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            rows, _ = await _stored(db_pool)
            if rows == published:
                break
            await asyncio.sleep(0.5)
        rows, distinct = await _stored(db_pool)
        assert rows == published, f"stored {rows}, published {published}"
        assert distinct == published, "a quote was stored twice"
    finally:
        stop_publishing.set()
        with contextlib.suppress(Exception):
            await publisher
        members.stop_all()
        async with db_pool.connection() as conn:
            await conn.execute("DELETE FROM ticks WHERE symbol = ANY(%s)", (SYMBOLS,))
            await conn.execute("DELETE FROM candles WHERE symbol = ANY(%s)", (SYMBOLS,))
