"""The outbox relay against the real broker and database: journal rows reach the topic in
sequence, and its loss check reads the broker's log ends correctly. (The embedded broker's
ListOffsets under-reports a log end when the last batch holds several records; the relay used
to read that as a loss and publish the whole journal again every few seconds.)"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from psycopg_pool import AsyncConnectionPool

from kit.data.db import open_pool
from kit.data.kafka import ensure_topics, make_consumer
from kit.rpc.health import HealthReporter
from services.trading import relay as relay_module
from services.trading.relay import OutboxRelay
from tests.market.conftest import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHARD = 77
TOPIC = "test.relay-events"
ROWS = 200


async def test_relay_publishes_in_sequence_without_false_losses(
    db_pool: AsyncConnectionPool, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "LOSS_CHECK_INTERVAL_S", 0.05)
    await ensure_topics(kafka_bootstrap, {TOPIC: 2})
    now = datetime.now(UTC)
    async with db_pool.connection() as conn:
        await conn.execute("DELETE FROM trading_journal WHERE shard = %s", (SHARD,))
        await conn.execute("DELETE FROM trading_outbox WHERE shard = %s", (SHARD,))
        await conn.execute(
            "INSERT INTO trading_journal (shard, sequence, account_id, event_type, payload,"
            " created_at) SELECT %s, s, s %% 7, 1, convert_to('event ' || s, 'UTF8'), %s"
            " FROM generate_series(1, %s) s",
            (SHARD, now, ROWS),
        )
    relay = OutboxRelay(db_pool, kafka_bootstrap, SHARD, topic=TOPIC)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: relay.published == ROWS, 60)
        checks = relay.loss_checks
        await eventually(lambda: relay.loss_checks >= checks + 3, 30)
        assert relay.losses == 0
        assert relay.published == ROWS
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    consumer = make_consumer(kafka_bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(2)]
        consumer.assign(partitions)
        payloads: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(payloads) < ROWS and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                payloads.extend(r.value for r in records)
    finally:
        await consumer.stop()
    sequences = sorted(int(p.split()[1]) for p in payloads)
    assert sequences == list(range(1, ROWS + 1))  # each once: nothing published twice


async def test_relay_survives_pool_timeouts_and_resumes(
    database_url: str, kafka_bootstrap: str
) -> None:
    """A pool that gives no connection in time (what a database outage looks like to the relay)
    used to end the relay task for good; now it reports itself down and resumes."""
    shard, topic = SHARD + 1, f"{TOPIC}-outage"
    await ensure_topics(kafka_bootstrap, {topic: 1})
    pool = await open_pool(database_url, min_size=1, max_size=1, wait_s=0.2)
    reporter = HealthReporter()
    relay = OutboxRelay(pool, kafka_bootstrap, shard, topic=topic, reporter=reporter)
    try:
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM trading_journal WHERE shard = %s", (shard,))
            await conn.execute("DELETE FROM trading_outbox WHERE shard = %s", (shard,))
            await conn.execute(
                "INSERT INTO trading_journal (shard, sequence, account_id, event_type, payload,"
                " created_at) SELECT %s, s, 1, 1, 'e', now() FROM generate_series(1, 5) s",
                (shard,),
            )
            await conn.commit()
            task = asyncio.create_task(relay.run())
            # The only connection is held here: every round of the relay times out.
            await eventually(lambda: relay.failures >= 2, 30)
            assert not task.done(), task
            assert not reporter.serving
        await eventually(lambda: relay.published == 5, 30)
        assert reporter.serving
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()
