"""Reading a partition at a given offset: what record is there now, and where the log ends.

Why not ListOffsets (`end_offsets`)? The embedded broker (Tansu) answers it with the base
offset of the partition's last record batch plus one, not the offset after its last record
(15 records in one batch: it says 1). A fetch's high watermark is right, so log ends are read
from a fetch here.

Why read a record? The embedded broker keeps its logs in memory: after a restart every
partition starts again at offset 0. A log that is still shorter than a stored position shows
by its end; once producers have written past the position, the offsets look valid while they
name other records, and only the record itself tells (see `record_digest`).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

DIGEST_BYTES = 16


def record_digest(value: bytes | None) -> bytes:
    """A short fingerprint of a record's value, stored next to a position."""
    return hashlib.blake2b(value or b"", digest_size=DIGEST_BYTES).digest()


@dataclass(frozen=True)
class LogPoint:
    # The partition's log end (high watermark) as its fetch reported it.
    log_end: int
    # The record at the probed offset; None when the log has no record there (it ends
    # before it, or retention removed it).
    value: bytes | None


def seen_log_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The log end of `tp` as the consumer's last fetch reported it; None before the first
    fetch and for a partition the consumer is not assigned (any more): aiokafka's own
    `highwater` raises AssertionError for those, which would kill the caller's task when an
    assignment changes under it (a tick writer handing partitions on)."""
    if tp not in consumer.assignment():
        return None
    log_end: int | None = consumer.highwater(tp)
    return log_end


def behind_log_end(consumer: AIOKafkaConsumer, topic: str, positions: dict[int, int]) -> set[int]:
    """Partitions whose log end, as the consumer's last fetch reported it, is below our
    position (partition -> next offset): the log was reset (an embedded broker restart). That
    broker answers a fetch past the end with no records rather than an error, so callers check
    this after every fetch, with or without records. Partitions no longer assigned are
    skipped."""
    behind = set()
    for partition, position in positions.items():
        log_end = seen_log_end(consumer, TopicPartition(topic, partition))
        if log_end is not None and log_end < position:
            behind.add(partition)
    return behind


async def probe_offsets(
    consumer: AIOKafkaConsumer, topic: str, offsets: dict[int, int], timeout_s: float = 5.0
) -> dict[int, LogPoint]:
    """partition -> LogPoint at `offsets[partition]`, for the partitions the broker answered
    for within `timeout_s`. `consumer` must be started and outside any group (it is assigned
    these partitions); one with auto_offset_reset="latest" turns an out-of-range offset on a
    real Kafka into a fetch at the end, which still reports the log end."""
    if not offsets:
        return {}
    partitions = [TopicPartition(topic, p) for p in offsets]
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, offsets[tp.partition])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    values: dict[int, bytes | None] = {}
    points: dict[int, LogPoint] = {}
    while len(points) < len(offsets) and (left := deadline - loop.time()) > 0:
        batches = await consumer.getmany(*partitions, timeout_ms=int(min(left, 0.2) * 1000))
        for tp, records in batches.items():
            for record in records:
                if record.offset == offsets[tp.partition]:
                    values[tp.partition] = record.value
        for tp in partitions:
            log_end = consumer.highwater(tp)
            # A fetch from the offset returns its record first if there is one, so once the
            # partition has answered, a record not seen is a record not there.
            if tp.partition not in points and log_end is not None:
                points[tp.partition] = LogPoint(log_end, values.get(tp.partition))
                consumer.pause(tp)
    return points
