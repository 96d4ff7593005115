"""`exness trading`: the Trading engine as a gRPC service (default port 50053).

Needs DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS (`exness up` provides both). The engine owns the
accounts of shard EXNESS_SHARD_ID (of EXNESS_SHARD_COUNT) and refuses callers of other shards.
"""

from __future__ import annotations

import argparse
import logging

from exness.admin.v1 import admin_pb2_grpc
from exness.trading.v1 import trading_pb2_grpc

from kit.data.db import open_pool
from kit.data.db_watch import DatabaseWatch
from kit.data.kafka import ensure_topics
from kit.data.shard_layout import check_shard_count
from kit.logs import setup_logging
from kit.obs.metrics import serve_metrics
from kit.obs.tracing import setup_tracing
from kit.rpc.auth_keys import auth_service_verifier
from kit.rpc.health import HealthReporter
from kit.rpc.interceptors import RequestPipeline
from kit.rpc.revocations import RevokedSessions
from kit.rpc.server import GrpcServer, ServiceSpec
from kit.rpc.server import run as run_server
from kit.settings import Settings, require
from services.trading import metrics
from services.trading.admin import SERVICE_NAME as ADMIN_SERVICE_NAME
from services.trading.app import TradingApp
from services.trading.servicer import SERVICE_NAME

log = logging.getLogger(__name__)


def request_pipeline(
    settings: Settings, revocations: RevokedSessions | None = None
) -> RequestPipeline:
    """Token checks for TradingService, whose methods all act on the caller's own account, and
    the operators' TradingAdminService (both declare their access in their protos); verified
    tokens are cached; tokens of revoked sessions are refused and their streams ended."""
    return RequestPipeline(
        auth_service_verifier(settings),
        operator_token=settings.resolved_operator_token(),
        revocations=revocations,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, default=None, help="gRPC port (default: EXNESS_TRADING_PORT or 50053)"
    )


async def main(settings: Settings, port: int) -> None:
    setup_logging("trading", settings.log_level, settings.log_format)
    setup_tracing("trading", settings.data_dir)
    pool = await open_pool(settings.database_url, min_size=2, max_size=8, name="trading")
    await check_shard_count(pool, settings.shard_count, settings.shard_id)
    await ensure_topics(settings.kafka_bootstrap_servers)

    reporter = HealthReporter()
    app = await TradingApp.start(
        pool,
        reporter=reporter,
        shard_id=settings.shard_id,
        max_quote_age_s=settings.max_quote_age_s,
        max_pending_orders=settings.max_pending_orders,
        kafka_bootstrap=settings.kafka_bootstrap_servers,
        trading_sessions=settings.trading_sessions,
        charge_swaps=settings.charge_swaps,
    )
    metrics.register(app.engine, app.relay)
    serve_metrics(settings.bind_host, settings.trading_metrics_port)
    revocations = RevokedSessions(pool)
    await revocations.start()
    pipeline = request_pipeline(settings, revocations)
    server = GrpcServer(
        services=[
            ServiceSpec(
                SERVICE_NAME,
                lambda s: trading_pb2_grpc.add_TradingServiceServicer_to_server(app.servicer, s),
            ),
            ServiceSpec(
                ADMIN_SERVICE_NAME,
                lambda s: admin_pb2_grpc.add_TradingAdminServiceServicer_to_server(app.admin, s),
            ),
        ],
        interceptors=[pipeline],
        host=settings.bind_host,
        port=port,
        grace_s=settings.shutdown_grace_s,
        on_stop=[pool.close, app.stop, revocations.stop],
        reporter=reporter,
    )
    watch = DatabaseWatch(settings.database_url, reporter)
    await watch.start()
    server.on_stop.append(watch.stop)
    await server.serve_until_signalled()


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    require(settings, "trading", "database_url", "kafka_bootstrap_servers")
    port = args.port if getattr(args, "port", None) is not None else settings.trading_port
    run_server(lambda: main(settings, port))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.trading.main")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
