"""The poller's Prometheus metrics, read from its counters at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from services.poller.publish_stream import MarketPublisher
from services.poller.sources import FeedStats, QuoteBuffer


class PollerMetrics(Collector):
    def __init__(
        self, source: str, stats: FeedStats, publisher: MarketPublisher, buffer: QuoteBuffer
    ) -> None:
        self._source = source
        self._stats = stats
        self._publisher = publisher
        self._buffer = buffer

    def collect(self) -> Iterable[Metric]:
        source, stats, publisher = [self._source], self._stats, self._publisher

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=["source"])
            family.add_metric(source, value)
            return family

        yield counter(
            "exness_poller_messages_received", "Messages read from the source.", stats.received
        )
        yield counter("exness_poller_quotes", "Quotes the source produced.", stats.emitted)
        yield counter(
            "exness_poller_quotes_sent", "Quotes sent to MarketData.PublishQuotes.", publisher.sent
        )
        yield counter(
            "exness_poller_quotes_dropped",
            "Quotes dropped because the buffer was full (a live feed outran MarketData).",
            self._buffer.dropped,
        )
        reconnects = CounterMetricFamily(
            "exness_poller_reconnects",
            "Connections lost and opened again, to the exchange or to MarketData.",
            labels=["source", "link"],
        )
        reconnects.add_metric([*source, "exchange"], stats.disconnects)
        reconnects.add_metric([*source, "market"], max(publisher.calls - 1, 0))
        yield reconnects
        bad = CounterMetricFamily(
            "exness_poller_bad_messages",
            "Source messages skipped, by reason (malformed, unknown symbol, ...).",
            labels=["source", "reason"],
        )
        for reason, count in sorted(stats.skipped.copy().items()):
            bad.add_metric([*source, reason], count)
        yield bad
        rejected = CounterMetricFamily(
            "exness_poller_quotes_rejected",
            "Quotes MarketData refused, by reason.",
            labels=["source", "reason"],
        )
        for reason, count in sorted(publisher.rejected.copy().items()):
            rejected.add_metric([*source, reason], count)
        yield rejected
        buffered = GaugeMetricFamily(
            "exness_poller_buffered", "Quotes waiting to be sent.", labels=["source"]
        )
        buffered.add_metric(source, len(self._buffer))
        yield buffered


def register(
    source: str, stats: FeedStats, publisher: MarketPublisher, buffer: QuoteBuffer
) -> None:
    REGISTRY.register(PollerMetrics(source, stats, publisher, buffer))
