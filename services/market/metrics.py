"""MarketData's Prometheus metrics: the hub, PublishQuotes and the tick writer, read from their
counters at scrape time; the tick writer's batch latency is the one figure observed as it
happens (a histogram)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from kit.obs.kafka_metrics import KAFKA_POSITIONS

if TYPE_CHECKING:
    from services.market.main import MarketApp

TICK_BATCH_SECONDS = Histogram(
    "exness_tick_writer_batch_seconds",
    "Time to write one batch of ticks (offset fence, candles and COPY, one transaction).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class MarketMetrics(Collector):
    def __init__(self, app: MarketApp) -> None:
        self._app = app

    def collect(self) -> Iterable[Metric]:
        app = self._app
        if app.servicer is not None:
            yield from self._hub_and_publish(app)
        if app.tick_writer is not None:
            writer = app.tick_writer
            yield _counter(
                "exness_tick_writer_rows", "Tick rows written (COPY).", writer.rows_written
            )
            yield _counter(
                "exness_tick_writer_batches", "Tick batches committed.", writer.batches_written
            )
            yield _counter(
                "exness_tick_writer_candle_rows",
                "Candle rows inserted or updated.",
                writer.candle_rows_written,
            )
            yield _counter(
                "exness_tick_writer_malformed", "Records that were not quotes.", writer.malformed
            )
            yield _counter(
                "exness_tick_writer_db_retries",
                "Batches retried after a database error.",
                writer.db_retries,
            )

    def _hub_and_publish(self, app: MarketApp) -> Iterable[Metric]:
        hub = app.hub
        now_ns = time.time_ns()
        age = GaugeMetricFamily(
            "exness_quote_age_seconds",
            "Now minus the time of the latest quote MarketData holds, by symbol.",
            labels=["symbol"],
        )
        for symbol, quote_ns in sorted(hub.latest_times_ns().items()):
            age.add_metric([symbol], max(now_ns - quote_ns, 0) / 1e9)
        yield age
        yield _counter(
            "exness_market_quotes_received", "Quotes the fan-out read from Kafka.", hub.received
        )
        yield _counter(
            "exness_market_quotes_out_of_order",
            "Quotes dropped by the fan-out as older than the one it held.",
            hub.stale,
        )
        subscriptions = hub.subscriptions()
        yield GaugeMetricFamily(
            "exness_market_stream_subscribers",
            "Open StreamQuotes streams.",
            value=len(subscriptions),
        )
        yield _counter(
            "exness_market_quotes_conflated",
            "Quotes replaced by a newer one before a slow subscriber took them.",
            hub.conflated_closed + sum(s.conflated for s in subscriptions),
        )
        if app.feed is not None:
            yield _counter(
                "exness_market_feed_malformed",
                "Records on the quotes topic that were not quotes.",
                app.feed.malformed,
            )
        assert app.servicer is not None
        stats = app.servicer.publish_stats
        yield _counter(
            "exness_market_quotes_accepted", "Quotes PublishQuotes accepted.", stats.accepted
        )
        rejected = CounterMetricFamily(
            "exness_market_quotes_rejected",
            "Quotes PublishQuotes refused, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(stats.rejected.copy().items()):
            rejected.add_metric([reason], count)
        yield rejected


def register(app: MarketApp) -> None:
    """Registers the collector and the Kafka positions of the app's consumers."""
    REGISTRY.register(MarketMetrics(app))
    if app.feed is not None:
        feed = app.feed
        KAFKA_POSITIONS.track_consumer("market-fanout", feed.consumer, feed.topic, feed.positions)
    if app.tick_writer is not None:
        writer = app.tick_writer
        KAFKA_POSITIONS.track_consumer(
            writer.consumer_name, writer.consumer, writer.topic, writer.read_positions
        )
