"""Outbox relay: trading_journal -> Kafka `trading.events`, in sequence, at least once.

The relay reads committed journal rows after its watermark, produces them (key = account id,
acks=all), waits for the acknowledgements and only then advances the watermark in the database.
A crash anywhere re-publishes from the last saved watermark (consumers dedupe by sequence).

The embedded broker keeps records in memory, so it can lose them all on a restart. The relay
remembers the end offset the broker acknowledged per partition; when the broker reports a lower
end offset (read from a fetch, see kit.kafka_probe), records were lost and the relay publishes
the whole journal again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from psycopg_pool import AsyncConnectionPool

from kit.data.kafka import EVENTS_TOPIC, make_consumer, make_producer
from kit.data.kafka_probe import probe_offsets
from services.trading.tracing import RelaySpans

log = logging.getLogger(__name__)

_PARTITIONER = DefaultPartitioner()

BATCH_ROWS = 2000
LOSS_CHECK_INTERVAL_S = 5.0
# The relay gathers what several group commits wrote into one read and one produce round, rather
# than competing with the writer for the database after every commit.
MIN_PUMP_INTERVAL_S = 0.05
# The watermark is saved at most this often: after a crash the relay publishes again from the
# last saved one, which at-least-once delivery allows (consumers dedupe by sequence).
SAVE_INTERVAL_S = 1.0


class OutboxRelay:
    def __init__(
        self, pool: AsyncConnectionPool, bootstrap: str, shard: int, topic: str = EVENTS_TOPIC
    ) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.shard = shard
        self.topic = topic
        # Journal sequences start at 1 on every shard: consumers dedupe by (shard, sequence),
        # and every record names its shard.
        self._headers = [("shard", str(shard).encode())]
        self.published = 0
        self._acked: dict[int, int] = {}  # partition -> end offset acknowledged to us
        self._wake = asyncio.Event()
        self._more = False  # the last read was a full batch: read again at once
        self._rewind: int | None = None  # an operator asked to publish again after this
        # For logs and tests: broker log checks made, and losses found (journal re-published).
        self.loss_checks = 0
        self.losses = 0

    def wake(self, *_: Any) -> None:
        self._wake.set()

    def republish_from(self, sequence: int) -> None:
        """Publishes the journal again from `sequence` on (applied by the pump, between two
        rounds, so an acknowledgement in flight cannot move the watermark past it)."""
        self._rewind = sequence - 1
        self._wake.set()

    async def run(self) -> None:
        await self._load_state()
        while True:
            producer = make_producer(self.bootstrap, linger_ms=5, client_id="exness-relay")
            # Only asks the broker for log end offsets: no group, nothing to commit.
            offsets = make_consumer(
                self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                client_id="exness-relay-offsets",
            )
            try:
                await producer.start()
                await offsets.start()
                await self._pump(producer, offsets)
            except KafkaError as exc:
                log.warning("Kafka unavailable, the relay retries", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
            finally:
                await producer.stop()
                await offsets.stop()

    async def _pump(self, producer: AIOKafkaProducer, offsets: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        await self._check_loss(producer, offsets)
        checked_at = saved_at = loop.time()
        saved = self.published
        try:
            while True:
                pumped_at = loop.time()
                await self._pump_once(producer)
                if self.published != saved and loop.time() - saved_at >= SAVE_INTERVAL_S:
                    await self._save_state()
                    saved, saved_at = self.published, loop.time()
                if loop.time() - checked_at > LOSS_CHECK_INTERVAL_S:
                    await self._check_loss(producer, offsets)
                    checked_at = loop.time()
                if self._more:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                pause = MIN_PUMP_INTERVAL_S - (loop.time() - pumped_at)
                if pause > 0:
                    await asyncio.sleep(pause)
        finally:
            if self.published != saved:  # stopping (or Kafka failed): keep what was acknowledged
                with contextlib.suppress(Exception):
                    await self._save_state()

    async def _pump_once(self, producer: AIOKafkaProducer) -> None:
        """Publishes the next journal rows; waits for their acknowledgements."""
        self._wake.clear()  # before the read, so a commit during it is not missed
        if self._rewind is not None:
            self.published, self._rewind = min(self.published, self._rewind), None
        rows = await self._fetch()
        self._more = len(rows) >= BATCH_ROWS
        if not rows:
            return
        # Whole batches per partition (BatchBuilder) rather than one send() per record: the
        # per-record path (a future, a partition lookup and accumulator work each) was most of
        # the relay's CPU. Keys pick partitions with the producer's own default partitioner, so
        # an account's events keep to one partition, in sequence order.
        partitions = sorted(await producer.partitions_for(self.topic))
        builders: dict[int, BatchBuilder] = {}
        sent: list[tuple[asyncio.Future[Any], BatchBuilder]] = []
        spans = RelaySpans(self.topic)
        for sequence, account_id, payload, parent in rows:
            key = str(account_id).encode()
            headers = [*self._headers, *spans.start(sequence, parent)]
            partition = _PARTITIONER(key, partitions, partitions)
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            full = builder.append(timestamp=None, key=key, value=payload, headers=headers) is None
            if full:
                sent.append(
                    (await producer.send_batch(builder, self.topic, partition=partition), builder)
                )
                builder = builders[partition] = producer.create_batch()
                if builder.append(timestamp=None, key=key, value=payload, headers=headers) is None:
                    raise ValueError(f"journal record too large for a batch ({len(payload)} B)")
        for partition, builder in builders.items():
            sent.append(
                (await producer.send_batch(builder, self.topic, partition=partition), builder)
            )
        try:
            acked = await asyncio.gather(*(future for future, _ in sent))
        finally:
            spans.end()
        for metadata, (_, builder) in zip(acked, sent, strict=True):
            end = metadata.offset + builder.record_count()
            if end > self._acked.get(metadata.partition, 0):
                self._acked[metadata.partition] = end
        self.published = rows[-1][0]

    async def _check_loss(self, producer: AIOKafkaProducer, offsets: AIOKafkaConsumer) -> None:
        """Log ends come from a fetch at the last acknowledged offset (kit.kafka_probe: the
        embedded broker's ListOffsets under-reports them, which read as a loss every time the
        last batch held several records)."""
        partitions = await producer.partitions_for(self.topic)
        acked = {p: self._acked[p] for p in partitions if self._acked.get(p, 0) > 0}
        points = await probe_offsets(offsets, self.topic, {p: a - 1 for p, a in acked.items()})
        lost = [p for p, point in points.items() if point.log_end < acked[p]]
        self.loss_checks += 1
        if lost:
            self.losses += 1
            log.warning(
                "the broker lost trading.events records; publishing the journal again",
                extra={"partitions": lost},
            )
            self.published = 0
            self._acked = {}
            await self._save_state()

    async def _fetch(self) -> list[tuple[int, int, bytes, str | None]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT sequence, account_id, payload, traceparent FROM trading_journal"
                " WHERE shard = %s AND sequence > %s ORDER BY sequence LIMIT %s",
                (self.shard, self.published, BATCH_ROWS),
            )
            return [(int(s), int(a), bytes(p), t) for s, a, p, t in await cur.fetchall()]

    async def _load_state(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO trading_outbox (shard) VALUES (%s) ON CONFLICT DO NOTHING",
                (self.shard,),
            )
            cur = await conn.execute(
                "SELECT published_sequence, partition_offsets FROM trading_outbox WHERE shard = %s",
                (self.shard,),
            )
            row = await cur.fetchone()
        assert row is not None
        self.published = int(row[0])
        self._acked = {int(k): int(v) for k, v in (row[1] or {}).items()}

    async def _save_state(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE trading_outbox SET published_sequence = %s, partition_offsets = %s,"
                " updated_at = now() WHERE shard = %s",
                (self.published, json.dumps(self._acked), self.shard),
            )
