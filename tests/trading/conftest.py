"""Service fixtures of the trading tests: a real Auth service (its keys sign the tokens and its
JWKS endpoint verifies them), and real Trading engines in process on the session's PostgreSQL
and broker, each on its own Kafka topics so other tests' quotes never reach them."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from exness.market.v1 import market_pb2
from exness.trading.v1 import trading_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from psycopg_pool import AsyncConnectionPool

from kit.data.db import open_pool
from kit.data.kafka import ensure_topics, make_producer
from kit.rpc.server import GrpcServer, ServiceSpec
from kit.settings import Settings
from services.auth.main import build as build_auth
from services.auth.tokens import AccessTokenIssuer
from services.trading.app import TradingApp
from services.trading.main import request_pipeline
from services.trading.servicer import SERVICE_NAME
from tests.support.infra import free_port


@dataclass
class AuthHandle:
    settings: Settings
    issuer: AccessTokenIssuer

    def token(self, user_id: str, shard: int = 0) -> str:
        return self.issuer.issue(user_id, shard)


@pytest.fixture(scope="session")
async def auth(session_dir: Path, db_pool: AsyncConnectionPool) -> AsyncIterator[AuthHandle]:
    port = free_port()
    settings = Settings(
        data_dir=session_dir / "trading-auth", auth_port=port, auth_addr=f"127.0.0.1:{port}"
    )
    app = build_auth(settings, db_pool, port)
    await app.server.start()
    issuer = AccessTokenIssuer(app.keyring, settings.jwt_issuer, settings.jwt_audience, 900)
    yield AuthHandle(settings, issuer)
    await app.server.stop()


@dataclass
class Trading:
    app: TradingApp
    server: GrpcServer
    pool: AsyncConnectionPool
    channel: grpc.aio.Channel
    producer: AIOKafkaProducer
    quotes_topic: str
    events_topic: str
    auth: AuthHandle
    shard: int

    @property
    def stub(self) -> trading_pb2_grpc.TradingServiceStub:
        return trading_pb2_grpc.TradingServiceStub(self.channel)

    def md(self, user: str, shard: int | None = None) -> tuple[tuple[str, str], ...]:
        token = self.auth.token(user, self.shard if shard is None else shard)
        return (("authorization", f"Bearer {token}"),)

    async def quote(self, symbol: str, bid: str, ask: str, at: datetime | None = None) -> None:
        """Publishes a QuoteEvent to the engine's quotes topic and waits until it is applied."""
        when = at or datetime.now(UTC)
        stamp = Timestamp()
        stamp.FromDatetime(when)
        event = market_pb2.QuoteEvent(
            quote=market_pb2.Quote(symbol=symbol, bid=bid, ask=ask, time=stamp), source="test"
        )
        deadline = time.monotonic() + 20
        while True:
            # Re-sent until applied: a consumer just started may not be positioned yet.
            await self.producer.send_and_wait(
                self.quotes_topic, key=symbol.encode(), value=event.SerializeToString()
            )
            for _ in range(50):
                applied = self.app.engine.quote(symbol)
                if applied is not None and applied.time == when:
                    return
                await asyncio.sleep(0.01)
            if time.monotonic() > deadline:
                raise AssertionError(f"quote {symbol} {bid}/{ask} never reached the engine")

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop()
        await self.app.stop()
        await self.producer.stop()
        await self.pool.close()


StartTrading = Callable[..., Awaitable[Trading]]


@pytest.fixture(scope="session")
async def start_trading(
    database_url: str, kafka_bootstrap: str, auth: AuthHandle
) -> AsyncIterator[StartTrading]:
    """Starts an in-process engine (gRPC server included) for a shard; stopped at the end."""
    started: list[Trading] = []

    async def start(
        shard: int,
        *,
        quotes_topic: str | None = None,
        events_topic: str | None = None,
        max_pending_orders: int = 200,
        charge_swaps: bool = False,  # no rollover in the middle of a test
    ) -> Trading:
        quotes_topic = quotes_topic or f"test.quotes.{uuid.uuid4().hex[:8]}"
        events_topic = events_topic or f"test.events.{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka_bootstrap, {quotes_topic: 1, events_topic: 4})
        pool = await open_pool(database_url, min_size=2, max_size=6)
        app = await TradingApp.start(
            pool,
            shard_id=shard,
            max_quote_age_s=10,
            max_pending_orders=max_pending_orders,
            kafka_bootstrap=kafka_bootstrap,
            quotes_topic=quotes_topic,
            events_topic=events_topic,
            trading_sessions=False,  # trades XAUUSD at any hour (see tests/conftest.py)
            charge_swaps=charge_swaps,
        )
        pipeline = request_pipeline(auth.settings)  # as the engine process wires it
        server = GrpcServer(
            services=[
                ServiceSpec(
                    SERVICE_NAME,
                    lambda s: trading_pb2_grpc.add_TradingServiceServicer_to_server(
                        app.servicer, s
                    ),
                )
            ],
            interceptors=[pipeline],
            port=free_port(),
            grace_s=1,
        )
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        producer = make_producer(kafka_bootstrap, linger_ms=0)
        await producer.start()
        handle = Trading(
            app, server, pool, channel, producer, quotes_topic, events_topic, auth, shard
        )
        started.append(handle)
        return handle

    yield start
    for handle in started:
        with contextlib.suppress(Exception):
            await handle.stop()


@pytest.fixture(scope="session")
async def trading(start_trading: StartTrading) -> Trading:
    handle = await start_trading(0)
    await handle.quote("BTCUSD", "65000", "65010")
    return handle
