"""Catches a Kafka consumer that silently stops reading a partition.

A consumer can stop taking records from one partition while the log keeps growing and nothing
fails: no error, no log line, the last price served for minutes. The consumer's own view
cannot be trusted to show it (a wedged fetch updates neither its position nor its high
watermark), so the watch reads each partition's log end with a probe client of its own (a
fetch's high watermark; see kit.data.kafka_probe) and compares it with the consumer's position:

- stalled: the log ends past the position and the position has not moved for `stall_after_s`;
- reset: the log ends below the position (the embedded broker restarted with empty logs).

Each consumer decides how to recover (re-position, or re-create itself); the watch logs,
counts, and reports the consumer down in the service's health until it reads again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from kit.data.kafka import make_consumer
from kit.data.kafka_probe import probe_offsets
from kit.rpc.health import HealthReporter
from kit.settings import env_float

log = logging.getLogger(__name__)

# Seconds a partition may hold unread records while its position stands still.
STALL_AFTER_S = env_float("EXNESS_STALL_AFTER_S", 10.0)
CHECK_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Verdict:
    stalled: frozenset[int] = frozenset()
    reset: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.stalled or self.reset)


@dataclass
class _Standing:
    position: int
    since: float  # loop time the position was first seen with records waiting past it


@dataclass
class PartitionWatch:
    bootstrap: str
    topic: str
    name: str  # the consumer's name, in logs and health
    reporter: HealthReporter = field(default_factory=HealthReporter)
    stall_after_s: float = STALL_AFTER_S
    interval_s: float = CHECK_INTERVAL_S
    # Counters, for logs, tests and metrics.
    stalls: int = 0
    resets: int = 0
    checks: int = 0
    _standing: dict[int, _Standing] = field(default_factory=dict, repr=False)
    _probe: AIOKafkaConsumer | None = field(default=None, repr=False)
    _checked_at: float = field(default=float("-inf"), repr=False)

    async def check_consumer(self, consumer: AIOKafkaConsumer) -> Verdict:
        """`check` with the positions of `consumer`'s assigned partitions of the topic."""
        if not self._due():
            return Verdict()
        positions: dict[int, int] = {}
        for tp in consumer.assignment():
            if tp.topic != self.topic:
                continue
            try:
                positions[tp.partition] = await asyncio.wait_for(consumer.position(tp), 1.0)
            except Exception:  # no position yet (being reset): nothing to judge
                continue
        return await self.check(positions, force=True)

    def _due(self) -> bool:
        return asyncio.get_running_loop().time() - self._checked_at >= self.interval_s

    async def check(self, positions: dict[int, int], *, force: bool = False) -> Verdict:
        """At most every `interval_s` (else an empty verdict): which of the partitions at
        `positions` (partition -> next offset to read) are stalled or reset."""
        loop = asyncio.get_running_loop()
        if not force and not self._due():
            return Verdict()
        self._checked_at = loop.time()
        ends = await self._log_ends(positions)
        self.checks += 1
        now = loop.time()
        stalled, reset = set(), set()
        for partition, position in positions.items():
            end = ends.get(partition)
            if end is None:
                continue
            if end < position:
                reset.add(partition)
                self._standing.pop(partition, None)
                continue
            standing = self._standing.get(partition)
            if end == position or standing is None or standing.position != position:
                # Caught up, or moving: (re)start the clock only while records wait.
                if end > position:
                    self._standing[partition] = _Standing(position, now)
                else:
                    self._standing.pop(partition, None)
                continue
            if now - standing.since >= self.stall_after_s:
                stalled.add(partition)
                log.warning(
                    "%s: %s[%d] is stalled: the log ends at %d but the position stayed at %d"
                    " for %.0fs; recovering",
                    self.name, self.topic, partition, end, position, now - standing.since,
                )  # fmt: skip
        if reset:
            self.note_reset(reset)
        if stalled:
            self.stalls += 1
            self.reporter.down(self.name, f"{self.topic} partitions {sorted(stalled)} stalled")
        elif not reset and not any(
            s for s in self._standing.values() if now - s.since >= self.stall_after_s
        ):
            self.reporter.up(self.name)
        return Verdict(frozenset(stalled), frozenset(reset))

    def note_reset(self, partitions: set[int] | frozenset[int]) -> None:
        """Partitions the broker reset (found here or by the consumer itself): counted, and
        the consumer is reported down until the next check finds nothing wrong."""
        self.resets += 1
        log.warning(
            "%s: %s partitions %s were reset by the broker", self.name, self.topic,
            sorted(partitions),
        )  # fmt: skip
        self.reporter.down(self.name, f"{self.topic} partitions {sorted(partitions)} were reset")

    def forget(self, partitions: set[int] | frozenset[int]) -> None:
        """The consumer re-positioned these: their clocks start again."""
        for partition in partitions:
            self._standing.pop(partition, None)

    async def _log_ends(self, positions: dict[int, int]) -> dict[int, int]:
        if not positions:
            return {}
        try:
            if self._probe is None:
                self._probe = make_consumer(
                    self.bootstrap,
                    group_id=None,
                    enable_auto_commit=False,
                    client_id=f"{self.name}-watch",
                    fetch_max_wait_ms=10,  # the embedded broker holds a fetch this long
                )
                await self._probe.start()
            points = await probe_offsets(self._probe, self.topic, dict(positions), timeout_s=2.0)
        except Exception as exc:  # broker down: the consumer's own errors show that
            log.debug("%s: cannot read log ends: %s", self.name, exc)
            await self.close()
            return {}
        return {p: point.log_end for p, point in points.items()}

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            try:
                await probe.stop()
            except Exception as exc:
                log.debug("%s: closing the probe failed: %s", self.name, exc)


def partitions_of(topic: str, partitions: set[int] | frozenset[int]) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(partitions)]
