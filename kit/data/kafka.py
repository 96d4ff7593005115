"""Kafka clients with the settings this platform relies on, and explicit topic creation.

The embedded broker (Tansu) rejects idempotent and transactional producers, so delivery is
at-least-once with acks=all and consumers dedupe by sequence numbers carried in the payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from kit.rpc.errors import StartupError

log = logging.getLogger(__name__)

QUOTES_TOPIC = "market.quotes"  # key: symbol; value: exness.market.v1.QuoteEvent
EVENTS_TOPIC = "trading.events"  # key: account id; value: exness.trading.v1.AccountEvent

TOPIC_PARTITIONS: Mapping[str, int] = {QUOTES_TOPIC: 4, EVENTS_TOPIC: 4}

# Tansu holds JoinGroup for half the session timeout: a short one makes group start-up fast.
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000


def make_producer(
    bootstrap: str, *, linger_ms: int = 2, client_id: str = "exness"
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def make_consumer(
    bootstrap: str,
    *topics: str,
    group_id: str | None,
    auto_offset_reset: str = "latest",
    enable_auto_commit: bool = True,
    client_id: str = "exness",
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer with the platform's timeouts; `overrides` are further aiokafka settings
    (e.g. fetch_max_wait_ms) for what one client needs differently."""
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "group_id": group_id,
        "auto_offset_reset": auto_offset_reset,
        "enable_auto_commit": enable_auto_commit,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "retry_backoff_ms": 200,
        "metadata_max_age_ms": 30000,
    }
    settings.update(overrides)
    return AIOKafkaConsumer(*topics, **settings)


# What a broker that is down or restarting raises at an admin client.
ADMIN_ERRORS = (KafkaConnectionError, KafkaError, OSError)


def make_admin(bootstrap: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)


async def create_missing_topics(
    admin: AIOKafkaAdminClient, topics: Mapping[str, int] = TOPIC_PARTITIONS
) -> None:
    """Creates, through a started admin client, the topics that do not exist yet."""
    existing = set(await admin.list_topics())
    missing = [NewTopic(name, n, 1) for name, n in topics.items() if name not in existing]
    if missing:
        # Another process may have created them meanwhile.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(missing)
        log.info("created topics", extra={"topics": [t.name for t in missing]})


async def ensure_topics(
    bootstrap: str, topics: Mapping[str, int] = TOPIC_PARTITIONS, *, timeout_s: float = 30.0
) -> None:
    """Creates the topics that do not exist yet (never relies on auto-creation). Raises
    StartupError when the broker stays unreachable for `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = make_admin(bootstrap)
        try:
            await admin.start()
            await create_missing_topics(admin, topics)
            return
        except ADMIN_ERRORS as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise StartupError(f"Kafka at {bootstrap} is not reachable: {exc}") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


# --- Trace context in record headers (W3C `traceparent`, as on gRPC metadata) ----------------

Headers = list[tuple[str, bytes]]


def trace_headers(context: Context | None = None) -> Headers:
    """Record headers carrying the current (or the given) trace context; empty when there is
    none."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return [(key, value.encode()) for key, value in carrier.items()]


_tracer = trace.get_tracer("exness.kafka")


@contextlib.contextmanager
def consume_span(name: str, topic: str, headers: Iterable[tuple[str, bytes]]) -> Iterator[None]:
    """A consumer span continuing the trace a record's headers carry, current while the
    record is handled (callers only open it for records that carry one)."""
    with _tracer.start_as_current_span(
        name,
        context=context_from_headers(headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "process",
        },
    ):
        yield


def context_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> Context:
    """The trace context a record's headers carry (an empty context when they carry none)."""
    carrier = {key: value.decode(errors="replace") for key, value in headers or ()}
    return propagate.extract(carrier)
