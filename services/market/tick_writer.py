"""The tick writer: consumers of `market.quotes`, one per MarketData process, that split its
partitions among themselves and store every quote in `ticks` (COPY, in batches) and fold it
into `candles`, exactly once.

The split is made through leases in PostgreSQL (kit.data.partition_leases) and aiokafka's
`assign()`, not through a Kafka consumer group: the embedded broker can keep a departed member
as the group's leader and stall the group for minutes. A member hands a partition on by writing
what it read, then releasing its lease; a member that dies loses its leases when they expire.

Exactly once into PostgreSQL: each batch's transaction also advances the writer's offsets in
`market_consumer_offsets`, fenced on the offsets it started from. A retried batch whose first
attempt did commit, or a batch written by a member that lost its partitions in a rebalance,
fails the fence, rolls back, and the writer re-seeks from the stored offsets. Kafka's own
committed offsets are not used. The fence, not the lease, is what keeps a tick from being
written twice: two members that both believe they own a partition cannot both advance it.

Reading/decoding the next batch overlaps with writing the previous one (a queue of two), so the
Python side and PostgreSQL work in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from exness.market.v1 import market_pb2
from google.protobuf.message import DecodeError
from psycopg_pool import AsyncConnectionPool

from kit.backoff import Backoff
from kit.data.faults import inject_stall
from kit.data.kafka import QUOTES_TOPIC, make_consumer
from kit.data.kafka_probe import behind_log_end, probe_offsets, record_digest
from kit.data.partition_leases import DEFAULT_TTL_S, PartitionLeases, Share
from kit.data.partition_watch import PartitionWatch, Verdict
from kit.rpc.health import HealthReporter
from services.market.candles import BASE_WIDTH, CandleFolder, fold_stored_now, upsert_candles
from services.market.metrics import TICK_BATCH_SECONDS
from services.market.tick_rows import (
    CREATE_STAGING_SQL,
    MERGE_STAGED_SQL,
    STAGED_COPY_SQL,
    StampCache,
    copy_escape,
    price_ok,
    symbol_ok,
)

log = logging.getLogger(__name__)

TICK_WRITER_GROUP = "market-tick-writer"

_FENCE_SQL = """
INSERT INTO market_consumer_offsets (consumer, topic, partition, next_offset, last_record_digest)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (consumer, topic, partition) DO UPDATE
    SET next_offset = excluded.next_offset, last_record_digest = excluded.last_record_digest,
        updated_at = now()
    WHERE market_consumer_offsets.next_offset = %s
RETURNING 1
"""
_OFFSETS_SQL = (
    "SELECT partition, next_offset, last_record_digest FROM market_consumer_offsets"
    " WHERE consumer = %s AND topic = %s"
)
# Records decoded between two yields to the event loop (a few ms of work).
DECODE_CHUNK = 500
# Distinct sources/symbols remembered between batches (there are a handful in practice).
_CACHE_LIMIT = 1024


class _Fenced(Exception):
    """Another attempt or another member already advanced these offsets."""


@dataclass
class Batch:
    epoch: int
    # partition -> offset after its last record in this batch
    next_offsets: dict[int, int]
    # The rows as one buffer of COPY text (see tick_rows), built by `seal` from `lines`.
    payload: bytes = b""
    rows: int = 0
    folder: CandleFolder = field(default_factory=CandleFolder)
    malformed: int = 0
    lines: list[str] = field(default_factory=list)
    # partition -> value of its last record in this batch (its digest is stored with the
    # offsets; see kit.kafka_probe)
    last_values: dict[int, bytes | None] = field(default_factory=dict)

    def seal(self) -> Batch:
        self.payload = "".join(self.lines).encode()
        self.rows = len(self.lines)
        self.lines = []
        return self


class RecordDecoder:
    """Kafka records of QuoteEvents -> a Batch. Keeps small caches across batches (formatted
    seconds, escaped sources, checked symbols)."""

    def __init__(self) -> None:
        self._stamps = StampCache()
        self._sources: dict[str, str] = {}
        self._symbols: set[str] = set()

    def decode(
        self, epoch: int, records_by_tp: dict[TopicPartition, list[Any]], positions: dict[int, int]
    ) -> Batch:
        """One sealed batch of `records_by_tp` (see `extend`)."""
        batch = Batch(epoch, {})
        self.extend(batch, records_by_tp, positions)
        return batch.seal()

    def extend(
        self,
        batch: Batch,
        records_by_tp: dict[TopicPartition, list[Any]],
        positions: dict[int, int],
    ) -> None:
        """Adds records to an unsealed batch. `positions` (partition -> next offset to apply)
        is advanced; records below it are re-deliveries (a fetch that was in flight while the
        consumer was re-positioned) and are skipped."""
        append = batch.lines.append
        buckets = batch.folder.buckets
        get_bucket = buckets.get
        minute = BASE_WIDTH
        from_string = market_pb2.QuoteEvent.FromString
        prefix = self._stamps.prefix
        cached_prefix = self._stamps.cached.get
        sources = self._sources
        symbols = self._symbols
        malformed = batch.malformed
        for tp, records in records_by_tp.items():
            floor = positions.get(tp.partition, 0)
            if records and records[0].offset < floor:
                records = [r for r in records if r.offset >= floor]
            if not records:
                continue
            for record in records:
                try:
                    event = from_string(record.value)
                except (DecodeError, TypeError):
                    malformed += 1
                    continue
                quote = event.quote
                symbol, bid, ask = quote.symbol, quote.bid, quote.ask
                when, published = quote.time, event.publish_time
                seconds, nanos = when.seconds, when.nanos
                p_nanos = published.nanos
                time_prefix = cached_prefix(seconds) or prefix(seconds)
                p_seconds = published.seconds
                publish_prefix = cached_prefix(p_seconds) or prefix(p_seconds)
                if (
                    time_prefix is None
                    or publish_prefix is None
                    or not 0 <= nanos < 1_000_000_000
                    or not 0 <= p_nanos < 1_000_000_000
                    or not price_ok(bid)
                    or not price_ok(ask)
                ):
                    malformed += 1
                    continue
                if symbol not in symbols:
                    if not symbol_ok(symbol):
                        malformed += 1
                        continue
                    if len(symbols) >= _CACHE_LIMIT:
                        symbols.clear()
                    symbols.add(symbol)
                source = sources.get(event.source)
                if source is None:
                    if len(sources) >= _CACHE_LIMIT:
                        sources.clear()
                    source = sources[event.source] = copy_escape(event.source)
                append(
                    f"{symbol}\t{time_prefix}.{nanos // 1000:06d}+00\t{bid}\t{ask}\t{source}"
                    f"\t{publish_prefix}.{p_nanos // 1000:06d}+00\n"
                )
                # CandleFolder.add, inlined: this loop runs once per tick.
                key = (symbol, seconds - seconds % minute)
                bucket = get_bucket(key)
                if bucket is None:
                    bucket = buckets[key] = ([], [])
                bucket[0].append(seconds * 1_000_000_000 + nanos)
                bucket[1].append(bid)
            next_offset = records[-1].offset + 1
            batch.next_offsets[tp.partition] = positions[tp.partition] = next_offset
            batch.last_values[tp.partition] = records[-1].value
        batch.malformed = malformed


class TickWriter:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        bootstrap: str,
        *,
        consumer_name: str = TICK_WRITER_GROUP,
        topic: str = QUOTES_TOPIC,
        max_batch: int = 5000,
        batch_wait_ms: int = 100,
        member: str | None = None,
        lease_ttl_s: float = DEFAULT_TTL_S,
        reporter: HealthReporter | None = None,
    ) -> None:
        self._pool = pool
        self._topic = topic
        self._bootstrap = bootstrap
        self.consumer_name = consumer_name
        self._max_batch = max_batch
        self._batch_wait_ms = batch_wait_ms
        self._member = member
        self._lease_ttl_s = lease_ttl_s
        self._leases: PartitionLeases | None = None
        # Partitions are assigned from the leases; no Kafka group.
        self._consumer = make_consumer(
            bootstrap,
            client_id=consumer_name,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=2)
        self._expected: dict[int, int | None] = {}
        # Next offset the reader will decode, per partition (see RecordDecoder.extend).
        self._read_positions: dict[int, int] = {}
        self._decoder = RecordDecoder()
        self._epoch = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.assigned = asyncio.Event()
        # Cleared while a handover drains the queue: the reader then queues nothing new.
        self._reading = asyncio.Event()
        self._reading.set()
        # The latest heartbeat's decision, for the follower.
        self._share: Share | None = None
        self._share_changed = asyncio.Event()
        # Counters, for logs, tests and benchmarks.
        self.rows_written = 0
        self.batches_written = 0
        self.candle_rows_written = 0
        self.malformed = 0
        self.fence_conflicts = 0
        self.db_retries = 0
        self.log_resets = 0
        self.duplicates_skipped = 0  # rows of quotes already stored (read twice)
        self.reader_failures = 0  # unexpected errors the reader recovered from
        self.watch = PartitionWatch(
            bootstrap, topic, f"tick writer {consumer_name}", reporter=reporter or HealthReporter()
        )
        self._verdict = Verdict()  # found by the watch, acted on by the reader

    @property
    def member(self) -> str:
        return self._leases.member if self._leases is not None else self._member or ""

    @property
    def consumer(self) -> AIOKafkaConsumer:
        return self._consumer

    @property
    def topic(self) -> str:
        return self._topic

    def read_positions(self) -> dict[int, int]:
        """Next offset the reader decodes, by partition (a copy)."""
        return self._read_positions.copy()

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()  # fetches the metadata partitions_for_topic reads
        partitions = self._consumer.partitions_for_topic(self._topic)
        if not partitions:
            raise RuntimeError(f"topic {self._topic} does not exist")
        self._leases = PartitionLeases(
            self._pool,
            self.consumer_name,
            self._topic,
            len(partitions),
            member=self._member,
            ttl_s=self._lease_ttl_s,
        )
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="tick-writer-read"),
            asyncio.create_task(self._write_loop(), name="tick-writer-write"),
            asyncio.create_task(self._lease_loop(), name="tick-writer-leases"),
            asyncio.create_task(self._follow_loop(), name="tick-writer-follow"),
            asyncio.create_task(self._watch_loop(), name="tick-writer-watch"),
        ]

    async def _lease_loop(self) -> None:
        """Heartbeats a few times per lease period, whatever the follower is doing: a handover
        that takes longer than a lease must not let this member's leases and membership
        expire (the others would take its partitions while it still writes them, then hand
        them back: a handover that never settles)."""
        assert self._leases is not None
        interval = self._leases.ttl_s / 3
        while True:
            try:
                self._share = await self._leases.heartbeat()
                self._share_changed.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the fence still guards writes while leases lapse
                log.warning("tick writer: lease heartbeat failed: %s", exc)
            await asyncio.sleep(interval)

    async def _follow_loop(self) -> None:
        """Applies the latest heartbeat's decision (older ones are superseded)."""
        while True:
            await self._share_changed.wait()
            self._share_changed.clear()
            if self._share is None:
                continue
            try:
                await self._follow(self._share)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next heartbeat decides again
                log.warning("tick writer: handover failed: %s", exc)

    async def _follow(self, share: Share) -> None:
        """Reads the partitions this member owns; writes what it read of the others before
        releasing them, so the next owner starts where this one stopped."""
        assert self._leases is not None
        wanted = {TopicPartition(self._topic, p) for p in share.owned}
        if wanted != self._consumer.assignment() or not self.assigned.is_set():
            # The reader pauses, so the queue drains: a reader that keeps queueing batches
            # would hold the drain to its timeout at every handover.
            self._reading.clear()
            try:
                self._consumer.assign(sorted(wanted))
                await self.drain(timeout_s=10.0)
                await self.resync(wanted)
            finally:
                self._reading.set()
            log.info(
                "tick writer owns partitions",
                extra={
                    "member": self._leases.member,
                    "partitions": sorted(share.owned),
                    "members": share.members,
                },
            )
        # Not what a newer heartbeat has given back to this member meanwhile.
        latest = self._share or share
        await self._leases.release(share.to_release - latest.owned)

    async def stop(self) -> None:
        """Stops reading, writes what was already read, then gives its leases back."""
        reader, writer, leases, follower, watcher = self._tasks or (None,) * 5
        for task in (watcher, leases, follower):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self.drain(timeout_s=10.0)
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        if self._leases is not None:
            try:
                await self._leases.leave()
            except Exception as exc:  # they expire by themselves
                log.warning("tick writer: could not release its leases: %s", exc)
        await self._consumer.stop()
        await self.watch.close()

    async def drain(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            log.warning("tick writer: batches still queued after %.0fs", timeout_s)

    async def resync(self, partitions: Iterable[TopicPartition], lost: Iterable[int] = ()) -> None:
        """Positions the consumer at the offsets stored with the data; batches read before
        are dropped (a new epoch).

        The embedded broker keeps records in memory: after it restarts, every partition starts
        again at offset 0. A stored position is not trusted when the log now ends below it,
        when the reader saw the partition go back (`lost`), or when the record the broker now
        holds just before it is not the one stored with it (the new log has already grown past
        it; see kit.kafka_probe). Such a partition is read from its log start; the fence still
        expects the stored offset, so the next batch replaces it."""
        partitions = [tp for tp in partitions if tp.topic == self._topic]
        async with self._pool.connection() as conn:
            cur = await conn.execute(_OFFSETS_SQL, (self.consumer_name, self._topic))
            stored = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
        reset = await self._replaced_logs(partitions, stored, set(lost))
        expected: dict[int, int | None] = {}
        positions: dict[int, int] = {}
        for tp in partitions:
            offset = stored[tp.partition][0] if tp.partition in stored else None
            expected[tp.partition] = offset
            if tp.partition in reset:
                self.log_resets += 1
                offset = reset[tp.partition]
            positions[tp.partition] = offset or 0
            # Nothing stored: from offset 0, i.e. the earliest record (below the log start,
            # the consumer resets to earliest by itself). seek() does not await, so no fetch
            # is decoded between here and the epoch change below.
            self._consumer.seek(tp, offset or 0)
        # No awaits from here on: the reader must never see a new epoch with old positions.
        self._epoch += 1
        self._expected = expected
        self._read_positions = positions
        log.info(
            "tick writer positioned",
            extra={
                "partitions": sorted(tp.partition for tp in partitions),
                "offsets": positions,
                "stored": {p: o for p, o in self._expected.items()},
            },
        )
        inject_stall(self._consumer, self._topic, self.consumer_name)
        self.assigned.set()

    async def _replaced_logs(
        self,
        partitions: list[TopicPartition],
        stored: dict[int, tuple[int, bytes | None]],
        lost: set[int],
    ) -> dict[int, int]:
        """partition -> where to read it from instead (0: its start), for the assigned
        partitions whose stored position is about a log the broker no longer has."""
        reset = {p: 0 for p in lost if p in stored}
        to_probe = {
            tp.partition: stored[tp.partition][0] - 1
            for tp in partitions
            if tp.partition in stored and tp.partition not in reset and stored[tp.partition][0]
        }
        if not to_probe:
            return reset
        probe = make_consumer(
            self._bootstrap, group_id=None, client_id=f"{self.consumer_name}-probe",
            enable_auto_commit=False,
        )  # fmt: skip
        try:
            await probe.start()
            points = await probe_offsets(probe, self._topic, to_probe)
        except Exception as exc:  # broker unreachable: positions are checked again later
            log.warning("tick writer: cannot check stored positions: %s", exc)
            points = {}
        finally:
            await probe.stop()
        for partition, offset in to_probe.items():
            point = points.get(partition)
            expected_digest = stored[partition][1]
            if point is None:
                log.warning(
                    "tick writer: %s[%d] did not answer; trusting the stored offset %d",
                    self._topic, partition, offset + 1,
                )  # fmt: skip
            elif point.log_end <= offset:
                log.warning(
                    "tick writer: %s[%d] was reset by the broker (log end %d < stored offset"
                    " %d); reading it from its start",
                    self._topic, partition, point.log_end, offset + 1,
                )  # fmt: skip
                reset[partition] = 0
            elif (
                point.value is not None
                and expected_digest is not None
                and record_digest(point.value) != expected_digest
            ):
                log.warning(
                    "tick writer: %s[%d] holds another record at offset %d than the one stored"
                    " with the position (the broker's log was replaced); reading it from its"
                    " start",
                    self._topic, partition, offset,
                )  # fmt: skip
                reset[partition] = 0
        return reset

    async def _watch_loop(self) -> None:
        """Beside the reader: finds partitions whose log grows while the writer's read
        position stands still (see kit.data.partition_watch)."""
        while True:
            await asyncio.sleep(self.watch.interval_s)
            verdict = await self.watch.check(dict(self._read_positions))
            if verdict:
                self._verdict = verdict

    async def _recover(self, verdict: Verdict) -> None:
        """Stalled or reset partitions are fetched again (resumed, should anything have
        paused them) from the offsets stored with the data."""
        assigned = self._consumer.assignment()
        self._consumer.resume(*assigned)
        await self.drain(timeout_s=10.0)
        await self.resync(assigned, verdict.reset)
        self.watch.forget(verdict.stalled | verdict.reset)

    async def _read_loop(self) -> None:
        """Reads until stopped. An unexpected error must not end the reader silently (its
        partitions would stay leased to a member that writes nothing): it is logged, and
        reading starts again from the offsets stored with the data."""
        while True:
            try:
                await self._read_batches()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.reader_failures += 1
                log.exception("tick writer: the reader failed; re-positioning")
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):  # else the watch finds it stalled
                    await self.resync(self._consumer.assignment())

    async def _read_batches(self) -> None:
        """Fills a batch chunk by chunk and queues it when it is full or the reader has caught
        up. Decoding a chunk takes a few milliseconds and the loop is released after each
        one, so the writer's round trips to PostgreSQL are answered while the next batch is
        being decoded (one decode of a whole batch would hold them up for tens of ms)."""
        pending: Batch | None = None
        while True:
            if not self._reading.is_set():
                pending = None  # read again from the positions the handover sets
                await self._reading.wait()
                continue
            if self._verdict:
                verdict, self._verdict = self._verdict, Verdict()
                pending = None
                try:
                    await self._recover(verdict)
                except Exception as exc:  # database down: the watch will find it again
                    log.warning("tick writer: recovery failed: %s", exc)
                    await asyncio.sleep(1.0)
            if not self._consumer.assignment():
                pending = None
                await asyncio.sleep(self._batch_wait_ms / 1000)
                continue
            try:
                records = await self._consumer.getmany(
                    timeout_ms=0 if pending is not None else self._batch_wait_ms,
                    max_records=DECODE_CHUNK,
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("tick writer fetch failed", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            # A log that now ends below our read position was reset (a broker restart).
            if lost := behind_log_end(self._consumer, self._topic, self._read_positions):
                self.watch.note_reset(lost)
                await self.drain(timeout_s=10.0)
                await self.resync(self._consumer.assignment(), lost)
                pending = None
                continue
            if pending is not None and pending.epoch != self._epoch:
                pending = None  # read before a resync moved the positions: read again
            fetched = 0
            if records:
                if pending is None:
                    pending = Batch(self._epoch, {})
                self._decoder.extend(pending, records, self._read_positions)
                fetched = sum(map(len, records.values()))
            if pending is not None and (
                len(pending.lines) >= self._max_batch or fetched < DECODE_CHUNK
            ):
                if pending.next_offsets:
                    await self._queue.put(pending.seal())
                pending = None
            await asyncio.sleep(0)  # getmany returns buffered records without yielding

    async def _write_loop(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                # Epoch 0: read before the first assignment was positioned from the database.
                if batch.epoch == self._epoch and self._epoch > 0:
                    await self._write_with_retry(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tick writer: batch dropped after an unexpected error")
            finally:
                self._queue.task_done()

    async def _write_with_retry(self, batch: Batch) -> None:
        backoff = Backoff(base_s=0.2, cap_s=5.0)
        while True:
            try:
                await self.write(batch)
                return
            except _Fenced as exc:
                self.fence_conflicts += 1
                log.warning("tick writer: offsets moved under us (%s); re-seeking", exc)
                await self.resync(self._consumer.assignment())
                return
            except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
                # The database restarted or the connection broke: the fence makes the retry
                # safe even if the first attempt had committed.
                self.db_retries += 1
                log.warning("tick writer: database error, retrying: %s", exc)
                await backoff.sleep()

    async def write(self, batch: Batch) -> None:
        """One transaction: the offset fences and the candle merge in one pipelined round
        trip, then the rows in one COPY buffer.

        The fences expect the offsets of the batch's own epoch, taken before the first await:
        a resync while this write waits (partitions handed over, a fence conflict) replaces
        them with the database's newer offsets, which would let this batch's older rows pass
        a fence meant for other rows and be stored twice."""
        if batch.epoch != self._epoch:
            return  # read before a resync moved the positions
        expected_by_partition = {p: self._expected.get(p) for p in batch.next_offsets}
        skipped = 0
        started = time.perf_counter()
        async with self._pool.connection() as conn, conn.transaction():
            fences = []
            async with conn.pipeline():
                if batch.rows:
                    await conn.execute(CREATE_STAGING_SQL)
                for partition, next_offset in batch.next_offsets.items():
                    expected = expected_by_partition[partition]
                    cur = await conn.execute(
                        _FENCE_SQL,
                        (
                            self.consumer_name,
                            self._topic,
                            partition,
                            next_offset,
                            record_digest(batch.last_values[partition]),
                            -1 if expected is None else expected,
                        ),
                    )
                    fences.append((partition, expected, cur))
            for partition, expected, cur in fences:
                if await cur.fetchone() is None:
                    raise _Fenced(f"partition {partition}: expected {expected}")
            folder = batch.folder
            if batch.rows:
                async with conn.cursor() as copy_cur, copy_cur.copy(STAGED_COPY_SQL) as copy:
                    await copy.write(batch.payload)
                merged = await conn.execute(MERGE_STAGED_SQL)
                skipped = batch.rows - max(merged.rowcount, 0)
                if skipped:
                    # Quotes stored before (a log read again): candles count each tick once,
                    # so they fold only the ticks this transaction stored.
                    folder = await fold_stored_now(conn)
            candle_rows = await upsert_candles(conn, folder)
        if batch.epoch == self._epoch:  # else the resync's offsets stand (a fence re-checks)
            self._expected.update(batch.next_offsets)
        self.duplicates_skipped += skipped
        self.rows_written += batch.rows
        self.candle_rows_written += candle_rows
        self.malformed += batch.malformed
        self.batches_written += 1
        TICK_BATCH_SECONDS.observe(time.perf_counter() - started)
