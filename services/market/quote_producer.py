"""Produces accepted quotes to Kafka `market.quotes` (key: symbol, value: QuoteEvent).

Sends are not awaited one by one (that would cost a broker round trip per quote); delivery
results are collected as they complete, and a failed delivery fails the PublishQuotes call
with UNAVAILABLE so the poller reconnects instead of losing quotes silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from exness.common.v1 import errors_pb2
from exness.market.v1 import market_pb2

from kit.data.kafka import QUOTES_TOPIC, make_producer
from kit.obs.kafka_metrics import KAFKA_POSITIONS
from kit.rpc.errors import ServiceError, unavailable

log = logging.getLogger(__name__)

# Undelivered sends allowed in flight before the next send waits for the oldest.
MAX_IN_FLIGHT = 5000


# exness.common.v1.ERROR_REASON_BROKER_UNAVAILABLE, named the way ErrorInfo.reason carries it.
BROKER_UNAVAILABLE = errors_pb2.ErrorReason.Name(
    errors_pb2.ERROR_REASON_BROKER_UNAVAILABLE
).removeprefix("ERROR_REASON_")


def broker_unavailable(exc: BaseException) -> ServiceError:
    return unavailable(BROKER_UNAVAILABLE, f"the quote broker is unavailable: {exc}")


class QuotePublisher:
    def __init__(self, bootstrap: str, topic: str = QUOTES_TOPIC) -> None:
        self._producer: AIOKafkaProducer = make_producer(
            bootstrap, linger_ms=1, client_id="market-publisher"
        )
        self._topic = topic
        self._in_flight: deque[asyncio.Future[RecordMetadata]] = deque()
        self.published = 0
        self.lost = 0  # sends that failed (their calls were told UNAVAILABLE)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        try:
            await self.flush()
        except ServiceError:
            log.warning("quotes still in flight were lost at shutdown")
        await self._producer.stop()

    async def publish(
        self, event: market_pb2.QuoteEvent, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """`headers`: the trace context of a traced quote."""
        while self._in_flight and (
            self._in_flight[0].done() or len(self._in_flight) >= MAX_IN_FLIGHT
        ):
            await self._settle(self._in_flight.popleft())
        try:
            future = await self._producer.send(
                self._topic,
                event.SerializeToString(),
                key=event.quote.symbol.encode(),
                headers=headers,
            )
        except KafkaError as exc:
            raise broker_unavailable(exc) from exc
        self._in_flight.append(future)
        self.published += 1

    @property
    def unsettled(self) -> int:
        """Sends whose delivery has neither succeeded nor failed yet."""
        return sum(not future.done() for future in self._in_flight)

    async def flush(self) -> None:
        """Waits until everything sent so far is acknowledged by the broker."""
        while self._in_flight:
            await self._settle(self._in_flight.popleft())

    async def _settle(self, future: asyncio.Future[RecordMetadata]) -> None:
        try:
            metadata = await future
        except KafkaError as exc:
            self._forget_failed()
            raise broker_unavailable(exc) from exc
        # The log end as the broker acknowledged it: stall detection compares consumer
        # positions with this, since a stalled consumer's own view of the log end stops too.
        KAFKA_POSITIONS.produced(metadata.topic, metadata.partition, metadata.offset)

    def _forget_failed(self) -> None:
        """Drops every send that already failed. Each was one lost quote of the same outage;
        left queued, each would fail one more PublishQuotes call after the broker is back
        (thousands of reconnects: a minute of BROKER_UNAVAILABLE)."""
        kept: deque[asyncio.Future[RecordMetadata]] = deque()
        for future in self._in_flight:
            if future.done() and future.exception() is not None:
                self.lost += 1
            else:
                kept.append(future)
        self._in_flight = kept
