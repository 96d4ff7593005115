"""A StreamQuotes subscriber whose HTTP/2 window is full (it stopped reading, so the server
is parked in write()) is removed from the hub as soon as it cancels or goes away.

grpc.aio used to raise that cancel outside the handler's generator, whose `finally` (the
removal) then waited for the garbage collector: seconds to minutes under a large heap."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import grpc
import pytest
from exness.market.v1 import market_pb2, market_pb2_grpc

from services.market.fanout import Subscription
from services.market.main import MarketApp
from tests.market.conftest import eventually, publish, quote_request

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Symbols of their own: several per batch, so the server writes faster than the window drains.
SYMBOLS = [f"ZTS{i}" for i in range(8)]
# A client whose receive window does not grow by itself (no BDP probing): once the server has
# written a window's worth, its next write() waits for a read that never comes.
FIXED_WINDOW = [("grpc.http2.bdp_probe", 0)]


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    """Off for the test: in a long-lived process with a large heap full collections are rare
    (seconds to minutes apart), and removal must not depend on one happening."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _fill_window(
    stub: market_pb2_grpc.MarketDataServiceStub, subscription: Subscription
) -> None:
    """Publishes until the server is parked in write(): quotes stay pending while nothing
    more is delivered."""
    for round_ in range(30):
        t0 = time.time_ns()
        await publish(
            stub,
            [
                quote_request(
                    SYMBOLS[i % 8], f"{100 + i % 50}.{round_ % 100:02d}", "200.00", t0 + i
                )
                for i in range(4000)
            ],
        )
        delivered = subscription.delivered
        await asyncio.sleep(0.3)
        if subscription.pending() and subscription.delivered == delivered:
            return
    raise AssertionError(f"the server never blocked on the window ({subscription.delivered} sent)")


async def test_a_cancelled_subscriber_with_a_full_window_is_removed(
    market_app: MarketApp,
    market_address: str,
    monkeypatch: pytest.MonkeyPatch,
    no_cycle_collector: None,
) -> None:
    hub = market_app.hub
    monkeypatch.setattr(hub, "max_age_ns", 10**18)
    base = hub.subscriber_count
    async with grpc.aio.insecure_channel(market_address, options=FIXED_WINDOW) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        stalled = stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=SYMBOLS))
        await eventually(lambda: hub.subscriber_count == base + 1)
        subscription = next(s for s in hub.subscriptions() if s.symbols == set(SYMBOLS))
        await _fill_window(stub, subscription)
        stalled.cancel()
        await eventually(lambda: hub.subscriber_count == base, 5)


async def test_a_vanished_subscriber_with_a_full_window_is_removed(
    market_app: MarketApp,
    market_address: str,
    no_cycle_collector: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = market_app.hub
    monkeypatch.setattr(hub, "max_age_ns", 10**18)
    base = hub.subscriber_count
    async with grpc.aio.insecure_channel(market_address, options=FIXED_WINDOW) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        stalled = stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=SYMBOLS))
        await eventually(lambda: hub.subscriber_count == base + 1)
        subscription = next(s for s in hub.subscriptions() if s.symbols == set(SYMBOLS))
        await _fill_window(stub, subscription)
        del stalled
    # The channel closed without cancelling the call: the connection went away.
    await eventually(lambda: hub.subscriber_count == base, 5)
