"""StreamQuotes subscribers whose HTTP/2 window is full (they stopped reading, so the server is
parked in write()) are removed from the hub as soon as they cancel or go away.

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

# Eight symbols: each wake-up of a handler writes several quotes, so the window fills fast.
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


def _parked(subscription: Subscription, delivered_before: int) -> bool:
    """Quotes wait for the reader while nothing more was written: stuck in write()."""
    return bool(subscription.pending()) and subscription.delivered == delivered_before


async def _fill_windows(
    stub: market_pb2_grpc.MarketDataServiceStub, subscriptions: list[Subscription]
) -> None:
    """Publishes until the server is parked in write() for every subscription."""
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
        before = [s.delivered for s in subscriptions]
        await asyncio.sleep(0.3)
        if all(_parked(s, n) for s, n in zip(subscriptions, before, strict=True)):
            return
    sent = [s.delivered for s in subscriptions]
    raise AssertionError(f"the server never blocked on the windows ({sent} sent)")


async def test_full_window_subscribers_are_removed_when_they_cancel_or_vanish(
    market_stub: market_pb2_grpc.MarketDataServiceStub,
    market_app: MarketApp,
    market_address: str,
    monkeypatch: pytest.MonkeyPatch,
    no_cycle_collector: None,
) -> None:
    hub = market_app.hub
    monkeypatch.setattr(hub, "max_age_ns", 10**18)  # no stale marks: only the test's quotes
    base = hub.subscriber_count
    request = market_pb2.StreamQuotesRequest(symbols=SYMBOLS)
    async with grpc.aio.insecure_channel(market_address, options=FIXED_WINDOW) as vanishing:
        async with grpc.aio.insecure_channel(market_address, options=FIXED_WINDOW) as cancelling:
            cancelled = market_pb2_grpc.MarketDataServiceStub(cancelling).StreamQuotes(request)
            vanished = market_pb2_grpc.MarketDataServiceStub(vanishing).StreamQuotes(request)
            await eventually(lambda: hub.subscriber_count == base + 2)
            subscriptions = [s for s in hub.subscriptions() if s.symbols == set(SYMBOLS)]
            await _fill_windows(market_stub, subscriptions)

            cancelled.cancel()
            await eventually(lambda: hub.subscriber_count == base + 1, 5)
        # The other one's channel closes without cancelling its call: the connection is gone.
        del vanished
    await eventually(lambda: hub.subscriber_count == base, 5)
