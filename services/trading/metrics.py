"""The engine's Prometheus metrics. State figures (accounts, positions, journal sequence,
outbox lag) are read at scrape time; the group commit is observed as it happens."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from exness.trading.v1 import trading_pb2 as pb
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

if TYPE_CHECKING:
    from services.trading.engine import Engine
    from services.trading.relay import OutboxRelay

COMMIT_SECONDS = Histogram(
    "exness_engine_commit_seconds",
    "Time of one group commit (one transaction for every command gathered).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
COMMIT_BATCH = Histogram(
    "exness_engine_commit_batch_size",
    "Journal events committed in one transaction (one group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
EVENTS = Counter(
    "exness_engine_events",
    "Journal events committed, by type: the commands and triggers the engine applied"
    " (order_filled, position_closed, margin_call, stop_out, ...).",
    ["type"],
)

_TYPE_NAMES = {
    value: name.removeprefix("ACCOUNT_EVENT_TYPE_").lower()
    for name, value in pb.AccountEventType.items()
}
_EVENT_COUNTERS = {value: EVENTS.labels(name) for value, name in _TYPE_NAMES.items()}


def observe_commit(size: int, seconds: float, events: Sequence[pb.AccountEvent]) -> None:
    COMMIT_SECONDS.observe(seconds)
    COMMIT_BATCH.observe(size)
    for event in events:
        counter = _EVENT_COUNTERS.get(event.type)
        if counter is not None:
            counter.inc()


class EngineMetrics(Collector):
    def __init__(self, engine: Engine, relay: OutboxRelay) -> None:
        self._engine = engine
        self._relay = relay

    def collect(self) -> Iterable[Metric]:
        engine = self._engine
        shard = [str(engine.shard_id)]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["shard"])
            family.add_metric(shard, value)
            return family

        yield gauge("exness_engine_accounts", "Accounts this shard holds.", len(engine.accounts))
        yield gauge(
            "exness_engine_open_positions", "Open positions of this shard.", len(engine.positions)
        )
        yield gauge(
            "exness_engine_pending_orders", "Pending orders of this shard.", len(engine.pending)
        )
        yield gauge(
            "exness_engine_journal_sequence",
            "Sequence of the newest journal event.",
            engine.last_sequence,
        )
        published = self._relay.published
        yield gauge(
            "exness_outbox_published_sequence",
            "Newest journal sequence the relay has put on trading.events.",
            published,
        )
        yield gauge(
            "exness_outbox_lag",
            "Journal events not yet on trading.events.",
            max(engine.last_sequence - published, 0),
        )


def register(engine: Engine, relay: OutboxRelay) -> None:
    REGISTRY.register(EngineMetrics(engine, relay))
