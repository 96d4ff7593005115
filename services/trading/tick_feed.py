"""Feeds `market.quotes` into the engine: each quote is a tick (SL/TP, pending orders, margin)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka.errors import KafkaError
from exness.market.v1 import market_pb2
from google.protobuf.message import DecodeError

from kit.data.faults import inject_stall
from kit.data.kafka import QUOTES_TOPIC, consume_span, make_consumer
from kit.data.partition_watch import PartitionWatch
from kit.decimals import parse_decimal
from kit.obs.kafka_metrics import KAFKA_POSITIONS
from kit.rpc.health import HealthReporter
from services.trading.engine import Engine

log = logging.getLogger(__name__)

CONSUMER_NAME = "exness-engine-quotes"


def apply_quote(engine: Engine, value: bytes, now: datetime) -> None:
    """Decodes one QuoteEvent and applies it; a malformed one is logged and skipped."""
    try:
        event = market_pb2.QuoteEvent.FromString(value)
        quote = event.quote
        bid, ask = parse_decimal(quote.bid), parse_decimal(quote.ask)
        time = quote.time.ToDatetime(tzinfo=UTC)
        markup = parse_decimal(event.spread_markup) if event.spread_markup else None
    except (DecodeError, ValueError) as exc:
        log.warning("ignoring a malformed quote", extra={"error": str(exc)})
        return
    if markup is not None:
        engine.follow_markup(quote.symbol, markup)
    engine.on_quote(quote.symbol, bid, ask, time, now)


async def consume_quotes(
    engine: Engine,
    bootstrap: str,
    after_batch: Callable[[], None],
    topic: str = QUOTES_TOPIC,
    reporter: HealthReporter | None = None,
) -> None:
    """Reads from the latest offset (an old quote is no basis for a fill after a restart).
    A partition that stalls, or whose log the broker reset below our position (no error
    then, just no records: every order refused STALE_QUOTE), gets a new consumer at the
    latest offset."""
    watch = PartitionWatch(bootstrap, topic, "engine quote feed", reporter or HealthReporter())
    while True:
        consumer = make_consumer(
            bootstrap,
            topic,
            group_id=None,
            auto_offset_reset="latest",
            client_id=CONSUMER_NAME,
        )
        positions: dict[int, int] = {}  # partition -> next offset, for metrics
        KAFKA_POSITIONS.track_consumer(CONSUMER_NAME, consumer, topic, positions.copy)
        try:
            await consumer.start()
            inject_stall(consumer, topic, CONSUMER_NAME)
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                verdict = await watch.check_consumer(consumer)
                if verdict:
                    watch.forget(verdict.stalled | verdict.reset)
                    break  # a new consumer
                if not batches:
                    continue
                now = datetime.now(UTC)
                for tp, messages in batches.items():
                    if messages:
                        positions[tp.partition] = messages[-1].offset + 1
                    for message in messages:
                        if message.value is None:
                            continue
                        if message.headers:  # a traced quote
                            with consume_span("engine on_quote", topic, message.headers):
                                apply_quote(engine, message.value, now)
                        else:
                            apply_quote(engine, message.value, now)
                after_batch()
        except KafkaError as exc:
            log.warning("quote consumer lost Kafka, retrying", extra={"error": str(exc)})
            await asyncio.sleep(1.0)
        finally:
            await consumer.stop()
            await watch.close()
