"""`exness market`: the MarketData service process.

By default one process runs the gRPC API (ListInstruments, GetQuote, GetCandles,
StreamQuotes, PublishQuotes), the Kafka fan-out that feeds StreamQuotes, and the tick writer
(ticks + candles). `--role api` and `--role tick-writer` split them across processes: API
instances scale with subscribers, while tick writers share the consumer group's partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from exness.admin.v1 import admin_pb2_grpc
from exness.market.v1 import market_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from kit.data.db import open_pool
from kit.data.db_watch import DatabaseWatch
from kit.data.kafka import ensure_topics
from kit.logs import setup_logging
from kit.obs.metrics import serve_metrics
from kit.obs.tracing import setup_tracing
from kit.rpc import server as kit_server
from kit.rpc.auth_keys import auth_service_verifier
from kit.rpc.health import HealthReporter
from kit.rpc.interceptors import RequestPipeline
from kit.rpc.server import GrpcServer, ServiceSpec
from kit.settings import Settings, require
from services.market import metrics
from services.market.admin import SERVICE_NAME as ADMIN_SERVICE_NAME
from services.market.admin import MarketAdminServicer
from services.market.fanout import QuoteHub
from services.market.hub_feed import QuoteFeed, seed_from_ticks
from services.market.instruments import InstrumentCatalog
from services.market.quote_producer import QuotePublisher
from services.market.servicer import SERVICE_NAME, MarketDataServicer
from services.market.tick_writer import TICK_WRITER_GROUP, TickWriter
from services.market.topics import TopicGuard

log = logging.getLogger(__name__)

ROLES = ("all", "api", "tick-writer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, help="gRPC port (default: $EXNESS_MARKET_PORT or 50052)"
    )
    parser.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all (default): API, fan-out and tick writer in one process; "
        "api: without the tick writer; tick-writer: only the tick writer",
    )


@dataclass
class MarketApp:
    """The MarketData parts, wired; tests build it in-process the same way."""

    pool: AsyncConnectionPool
    catalog: InstrumentCatalog
    hub: QuoteHub
    servicer: MarketDataServicer | None
    server: GrpcServer | None
    feed: QuoteFeed | None
    publisher: QuotePublisher | None
    tick_writer: TickWriter | None
    topic_guard: TopicGuard
    # What the components report; the server publishes it as grpc.health.
    reporter: HealthReporter
    db_watch: DatabaseWatch
    _stops: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start_components(self) -> None:
        """Everything except the gRPC server, in dependency order."""
        await self.catalog.refresh()
        await self.db_watch.start()
        self._stops.append(self.db_watch.stop)
        await self.topic_guard.start()
        self._stops.append(self.topic_guard.stop)
        if self.publisher is not None:
            await self.publisher.start()
            self._stops.append(self.publisher.stop)
        if self.feed is not None:
            specs = self.catalog.all()
            seeded = await seed_from_ticks(
                self.hub,
                self.pool,
                [s.symbol for s in specs],
                {s.symbol: s.price_decimals for s in specs},
            )
            log.info("latest quotes loaded from ticks", extra={"symbols": seeded})
            await self.feed.start()
            self._stops.append(self.feed.stop)
            marker = asyncio.create_task(self.hub.mark_stale_forever(), name="stale-quotes")
            self._stops.append(lambda: _cancel(marker))
        if self.tick_writer is not None:
            # In the background: joining the consumer group takes seconds (the embedded broker
            # holds a JoinGroup for half the session timeout, longer while a killed member of
            # ours is still listed), and the API must not wait for that to serve again.
            writer = self.tick_writer
            starting = asyncio.create_task(writer.start(), name="tick-writer-start")
            starting.add_done_callback(_log_failure)

            async def stop_writer() -> None:
                await _cancel(starting)
                await writer.stop()

            self._stops.append(stop_writer)

    async def stop_components(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                log.exception("error while stopping")

    async def start(self) -> int:
        """Components, then the server; returns the bound port (0 without a server)."""
        await self.start_components()
        return await self.server.start() if self.server is not None else 0

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.stop_components()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged
        await task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())


def build(
    settings: Settings,
    pool: AsyncConnectionPool,
    *,
    port: int | None = None,
    role: str = "all",
    bootstrap: str | None = None,
    tick_writer_group: str | None = None,
) -> MarketApp:
    bootstrap = bootstrap or settings.kafka_bootstrap_servers
    reporter = HealthReporter()
    db_watch = DatabaseWatch(settings.database_url, reporter)
    catalog = InstrumentCatalog(pool)
    hub = QuoteHub(max_age_s=settings.max_quote_age_s)
    writer = None
    if role in ("all", "tick-writer"):
        writer = TickWriter(
            pool,
            bootstrap,
            consumer_name=tick_writer_group or TICK_WRITER_GROUP,
            reporter=reporter,
        )
    guard = TopicGuard(bootstrap, reporter=reporter)
    if role == "tick-writer":
        return MarketApp(
            pool, catalog, hub, None, None, None, None, writer, guard, reporter, db_watch
        )
    publisher = QuotePublisher(bootstrap)
    feed = QuoteFeed(hub, bootstrap, reporter=reporter)
    servicer = MarketDataServicer(
        pool, catalog, hub, publisher, trading_sessions=settings.trading_sessions
    )
    admin = MarketAdminServicer(pool, catalog)
    pipeline = RequestPipeline(
        auth_service_verifier(settings),
        settings.resolved_service_token(),
        settings.resolved_operator_token(),
    )
    server = GrpcServer(
        services=[
            ServiceSpec(
                SERVICE_NAME,
                lambda s: market_pb2_grpc.add_MarketDataServiceServicer_to_server(servicer, s),
            ),
            ServiceSpec(
                ADMIN_SERVICE_NAME,
                lambda s: admin_pb2_grpc.add_MarketAdminServiceServicer_to_server(admin, s),
            ),
        ],
        interceptors=[pipeline],
        host=settings.bind_host,
        port=settings.market_port if port is None else port,
        grace_s=settings.shutdown_grace_s,
        reporter=reporter,
    )
    return MarketApp(
        pool, catalog, hub, servicer, server, feed, publisher, writer, guard, reporter, db_watch
    )


async def serve(settings: Settings, port: int | None, role: str) -> None:
    setup_logging("market", settings.log_level, settings.log_format)
    setup_tracing("market", settings.data_dir)
    # Both raise StartupError when PostgreSQL/Kafka is down: kit_server.run reports one line.
    pool = await open_pool(settings.database_url, name="market", max_size=8)
    try:
        await ensure_topics(settings.kafka_bootstrap_servers)
        app = build(settings, pool, port=port, role=role)
        metrics.register(app)
        serve_metrics(settings.bind_host, settings.market_metrics_port)
        await app.start_components()
        if app.server is not None:
            app.server.on_stop.append(app.stop_components)
            await app.server.serve_until_signalled()
        else:
            await _wait_for_signal()
            await app.stop_components()
    finally:
        await pool.close()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("tick writer running")
    await stop.wait()


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    require(settings, "market", "database_url", "kafka_bootstrap_servers")
    kit_server.run(lambda: serve(settings, args.port, args.role))
    return 0
