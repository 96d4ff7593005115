"""Kafka positions as Prometheus gauges, read at scrape time (nothing on the consume path).

  exness_kafka_consumer_position{consumer, topic, partition}  next offset the consumer reads
  exness_kafka_consumer_log_end{consumer, topic, partition}   log end its last fetch reported
  exness_kafka_consumer_lag{consumer, topic, partition}       log end - position
  exness_kafka_produced_log_end{topic, partition}             offset after the last record this
                                                              process had acknowledged

A stalled consumer stops fetching, so its own view of the log end stops too: the alert
"partition not advancing while its log grows" compares the consumer position with the
producers' acknowledged offsets (exness_kafka_produced_log_end), which keep moving.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import TopicPartition
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from kit.data.kafka_probe import seen_log_end

# partition -> next offset to read
Positions = Callable[[], Mapping[int, int]]


class _Tracked:
    def __init__(self, consumer: Any, topic: str, positions: Positions) -> None:
        self.consumer = consumer
        self.topic = topic
        self.positions = positions


class KafkaPositions(Collector):
    """One per process (KAFKA_POSITIONS): consumers register what they read, producers what
    the broker acknowledged."""

    def __init__(self) -> None:
        self._consumers: dict[str, _Tracked] = {}
        self._produced: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def track_consumer(self, name: str, consumer: Any, topic: str, positions: Positions) -> None:
        """`positions` is called at scrape time (from the metrics thread: it must only read)."""
        with self._lock:
            self._consumers[name] = _Tracked(consumer, topic, positions)

    def forget_consumer(self, name: str) -> None:
        with self._lock:
            self._consumers.pop(name, None)

    def produced(self, topic: str, partition: int, offset: int) -> None:
        """The broker acknowledged a record at `offset`."""
        key = (topic, partition)
        if offset >= self._produced.get(key, -1):
            self._produced[key] = offset

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["consumer", "topic", "partition"]
        position = GaugeMetricFamily(
            "exness_kafka_consumer_position", "Next offset the consumer reads.", labels=labels
        )
        log_end = GaugeMetricFamily(
            "exness_kafka_consumer_log_end",
            "Partition log end as the consumer's last fetch reported it.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "exness_kafka_consumer_lag",
            "Records between the consumer's position and the log end it last saw.",
            labels=labels,
        )
        with self._lock:
            tracked = list(self._consumers.items())
        for name, t in tracked:
            for partition, next_offset in sorted(dict(t.positions()).items()):
                values = [name, t.topic, str(partition)]
                position.add_metric(values, next_offset)
                end = seen_log_end(t.consumer, TopicPartition(t.topic, partition))
                if end is not None:
                    log_end.add_metric(values, end)
                    lag.add_metric(values, max(end - next_offset, 0))
        produced = GaugeMetricFamily(
            "exness_kafka_produced_log_end",
            "Offset after the last record of the partition the broker acknowledged to this"
            " process.",
            labels=["topic", "partition"],
        )
        for (topic, partition), offset in sorted(self._produced.copy().items()):
            produced.add_metric([topic, str(partition)], offset + 1)
        yield position
        yield log_end
        yield lag
        yield produced


KAFKA_POSITIONS = KafkaPositions()
REGISTRY.register(KAFKA_POSITIONS)
