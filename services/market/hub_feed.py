"""Feeds the QuoteHub from Kafka `market.quotes`.

Every MarketData instance reads every partition itself (no consumer group: each instance
serves its own StreamQuotes subscribers), starting at the end of the topic. Before that, the
latest stored tick of each instrument seeds the hub, so GetQuote and new subscribers have a
price right after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from exness.market.v1 import market_pb2
from google.protobuf.message import DecodeError
from psycopg_pool import AsyncConnectionPool

from kit.data.kafka import QUOTES_TOPIC, consume_span, make_consumer
from kit.data.kafka_probe import behind_log_end
from kit.decimals import format_decimal
from services.market.fanout import QuoteHub

log = logging.getLogger(__name__)

_LATEST_TICK_SQL = "SELECT bid, ask, time FROM ticks WHERE symbol = %s ORDER BY time DESC LIMIT 1"


# The embedded broker (Tansu) answers a fetch only when its max wait expires, even when data
# arrives earlier (measured: p50 delivery 16 ms at 50 ms, 5 ms at 20 ms or less), so the wait
# bounds quote latency. A real Kafka answers as soon as data arrives; there the short wait
# only costs idle fetch requests (100/s per broker connection).
FEED_FETCH_MAX_WAIT_MS = 10


def make_fanout_consumer(bootstrap: str, client_id: str = "market-fanout") -> AIOKafkaConsumer:
    return make_consumer(
        bootstrap,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        # Only for a position the broker no longer has (start-up seeks to the end itself):
        # after the embedded broker restarts, its logs begin again at 0 and our position is
        # past their end; reading the new log from its start loses none of the quotes sent
        # since (older ones, e.g. after retention, are dropped by the hub as stale).
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FEED_FETCH_MAX_WAIT_MS,
    )


async def seed_from_ticks(
    hub: QuoteHub, pool: AsyncConnectionPool, symbols: list[str], decimals: dict[str, int]
) -> int:
    """Puts the newest stored tick of each symbol into the hub; returns how many it found."""
    found = 0
    async with pool.connection() as conn:
        for symbol in symbols:
            cur = await conn.execute(_LATEST_TICK_SQL, (symbol,))
            row = await cur.fetchone()
            if row is None:
                continue
            bid, ask, when = row
            quote = market_pb2.Quote(
                symbol=symbol,
                bid=format_decimal(bid, decimals[symbol]),
                ask=format_decimal(ask, decimals[symbol]),
            )
            quote.time.FromDatetime(when)
            hub.publish(quote)
            found += 1
    return found


class QuoteFeed:
    def __init__(self, hub: QuoteHub, bootstrap: str, topic: str = QUOTES_TOPIC) -> None:
        self._hub = hub
        self._topic = topic
        self._consumer = make_fanout_consumer(bootstrap)
        self._task: asyncio.Task[None] | None = None
        # Offset after the last record seen, by partition number (see _check_resets).
        self._next: dict[int, int] = {}
        self.malformed = 0
        self.log_resets = 0

    @property
    def consumer(self) -> AIOKafkaConsumer:
        return self._consumer

    @property
    def topic(self) -> str:
        return self._topic

    def positions(self) -> dict[int, int]:
        """Next offset to read, by partition (a copy)."""
        return self._next.copy()

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()  # loads metadata for every topic
        partitions = self._consumer.partitions_for_topic(self._topic) or set()
        if not partitions:
            raise RuntimeError(f"Kafka topic {self._topic} has no partitions (was it created?)")
        assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        # Resolve the end offsets now, so quotes produced after start() returns are seen.
        for tp in assigned:
            self._next[tp.partition] = await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run(), name="quote-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def _check_resets(self) -> None:
        """After the embedded broker restarts, its logs begin again at 0: a position past the
        log end gets no records (no error either), so such a partition is read again from its
        start instead of waiting until the new log grows past our old position."""
        for partition in sorted(behind_log_end(self._consumer, self._topic, self._next)):
            tp = TopicPartition(self._topic, partition)
            log.warning(
                "quote feed: %s was reset by the broker (log end %s < %d); reading it"
                " from its start",
                tp,
                self._consumer.highwater(tp),
                self._next[partition],
            )
            self.log_resets += 1
            self._consumer.seek(tp, 0)
            self._next[partition] = 0

    async def _run(self) -> None:
        publish = self._hub.publish
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception:  # the client reconnects by itself; keep going
                log.warning("quote feed fetch failed", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            self._check_resets()
            for tp, records in batches.items():
                if records:
                    self._next[tp.partition] = records[-1].offset + 1
                for record in records:
                    try:
                        event = market_pb2.QuoteEvent.FromString(record.value)
                    except DecodeError:
                        self.malformed += 1
                        continue
                    if record.headers:  # a traced quote
                        with consume_span(f"{self._topic} fan-out", self._topic, record.headers):
                            publish(event.quote)
                    else:
                        publish(event.quote)
