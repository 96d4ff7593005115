"""StreamQuotes: the latest quote at once, then updates; exactly the requested symbols for 200
concurrent subscribers; a subscriber that never reads stays within its bounded buffer; a
cancelled subscriber is removed from the hub."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from exness.market.v1 import market_pb2, market_pb2_grpc

from services.market.main import MarketApp
from tests.market.conftest import eventually, publish, quote_request

pytestmark = pytest.mark.asyncio(loop_scope="session")

SYMBOLS = [f"ZTS{i}" for i in range(10)]


def _symbols_of(index: int) -> list[str]:
    """1 to 3 distinct stream symbols per subscriber (ZTS8/ZTS9 are kept for other tests)."""
    count = 1 + index % 3
    return sorted({SYMBOLS[(index * 7 + k * 3) % 8] for k in range(count)})


async def test_first_message_is_the_latest_quote(
    market_stub: market_pb2_grpc.MarketDataServiceStub, market_app: MarketApp
) -> None:
    t0 = time.time_ns()
    await publish(
        market_stub,
        [
            quote_request("ZTS9", "50.00", "50.10", t0),
            quote_request("ZTS9", "51.00", "51.10", t0 + 1),
        ],
    )
    await eventually(lambda: (q := market_app.hub.latest("ZTS9")) is not None and q.bid == "51.00")
    call = market_stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=["ZTS9"]))
    first = await asyncio.wait_for(call.read(), 5)
    assert (first.quote.symbol, first.quote.bid, first.quote.ask) == ("ZTS9", "51.00", "51.10")
    await publish(market_stub, [quote_request("ZTS9", "52.00", "52.10", t0 + 2)])
    second = await asyncio.wait_for(call.read(), 5)
    assert second.quote.bid == "52.00"
    call.cancel()


async def test_stream_rejects_unknown_and_missing_symbols(
    market_stub: market_pb2_grpc.MarketDataServiceStub,
) -> None:
    call = market_stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=["ZZNOSUCH"]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await market_stub.StreamQuotes(market_pb2.StreamQuotesRequest()).read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_200_subscribers_each_get_exactly_their_symbols(
    market_stub: market_pb2_grpc.MarketDataServiceStub, market_app: MarketApp
) -> None:
    base = market_app.hub.subscriber_count
    wanted = [_symbols_of(i) for i in range(200)]
    calls = [market_stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=s)) for s in wanted]
    await eventually(lambda: market_app.hub.subscriber_count >= base + 200, 30)
    t0 = time.time_ns()
    rounds = 5
    # The final round carries a marker price per symbol that every follower must see.
    quotes = [
        quote_request(symbol, f"{100 + r}.{i:02d}", f"{101 + r}.{i:02d}", t0 + r * 100 + i)
        for r in range(rounds)
        for i, symbol in enumerate(SYMBOLS[:8])
    ]
    response = await publish(market_stub, quotes)
    assert response.accepted == len(quotes)
    final = {symbol: f"{100 + rounds - 1}.{i:02d}" for i, symbol in enumerate(SYMBOLS[:8])}

    async def collect(call: grpc.aio.UnaryStreamCall, symbols: list[str]) -> set[str]:
        seen: set[str] = set()
        finished: set[str] = set()
        last_ns: dict[str, int] = {}
        while finished != set(symbols):
            message = await call.read()
            quote = message.quote
            seen.add(quote.symbol)
            when = quote.time.ToNanoseconds()
            assert when >= last_ns.get(quote.symbol, 0), "an older quote after a newer one"
            last_ns[quote.symbol] = when
            if final.get(quote.symbol) == quote.bid:
                finished.add(quote.symbol)
        return seen

    seen = await asyncio.wait_for(
        asyncio.gather(*(collect(c, s) for c, s in zip(calls, wanted, strict=True))), 60
    )
    for got, symbols in zip(seen, wanted, strict=True):
        assert got == set(symbols)
    for call in calls:
        call.cancel()
    await eventually(lambda: market_app.hub.subscriber_count == base, 40)


async def test_a_subscriber_that_never_reads_stays_bounded(
    market_stub: market_pb2_grpc.MarketDataServiceStub,
    market_app: MarketApp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = market_app.hub
    # No stale marks here (a slow machine can take longer than the maximum quote age between
    # chunks): a mark is one more offer, and this test accounts for every offer itself.
    monkeypatch.setattr(hub, "max_age_ns", 10**18)
    base = hub.subscriber_count
    # Opened, then never read from: the server's writes fall behind the feed, and for them
    # it keeps only the newest quote per symbol.
    # A new subscriber is first offered the latest quote of each of its symbols.
    offered = sum(hub.latest(s) is not None for s in ("ZTS8", "ZTS9"))
    stalled = market_stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=["ZTS8", "ZTS9"]))
    await eventually(lambda: hub.subscriber_count == base + 1)
    subscription = next(s for s in hub.subscriptions() if s.symbols == {"ZTS8", "ZTS9"})
    t0 = time.time_ns() + 10_000_000
    total = 0
    for chunk in range(6):
        batch = [
            quote_request(
                "ZTS8" if i % 2 else "ZTS9",
                f"{10 + (i % 90)}.{chunk:02d}",
                f"{11 + (i % 90)}.{chunk:02d}",
                t0 + chunk * 10_000 + i,
                source="x" * 24,
            )
            for i in range(2000)
        ]
        total += (await publish(market_stub, batch)).accepted
        offered += len(batch)
        # The symbols may be on different partitions: wait for the last quote of each.
        last_ns = {r.quote.symbol: r.quote.time.ToNanoseconds() for r in batch}

        def caught_up(last_ns: dict[str, int] = last_ns) -> bool:
            return all(
                (quote := hub.latest(symbol)) is not None and quote.time.ToNanoseconds() >= ns
                for symbol, ns in last_ns.items()
            )

        await eventually(caught_up)
        # Whatever still waits for the reader is the newest quote of its symbol.
        last_bids = {r.quote.symbol: r.quote.bid for r in batch}
        pending = {s: m.quote.bid for s, m in subscription.pending().items()}
        assert pending.items() <= last_bids.items()
        # Every quote offered was sent, replaced by a newer one, or is still pending:
        # nothing is buffered anywhere else on the server.
        assert subscription.delivered + subscription.conflated + len(pending) == offered
    assert total == 12_000
    # The server fell behind and conflated instead of buffering without bound.
    assert subscription.conflated > 0
    assert subscription.delivered < total
    stalled.cancel()
    await eventually(lambda: hub.subscriber_count == base)


async def test_cancelled_subscribers_are_removed(
    market_stub: market_pb2_grpc.MarketDataServiceStub, market_app: MarketApp
) -> None:
    hub = market_app.hub
    base = hub.subscriber_count
    calls = [
        market_stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=["ZTS7"]))
        for _ in range(50)
    ]
    await eventually(lambda: hub.subscriber_count == base + 50)
    for call in calls[:25]:
        call.cancel()
    await eventually(lambda: hub.subscriber_count == base + 25)
    # A client that goes away without cancelling (its channel closes) is cleaned up too.
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{market_app.server.bound_port}"  # type: ignore[union-attr]
    ) as channel:
        other = market_pb2_grpc.MarketDataServiceStub(channel)
        extra = other.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=["ZTS7"]))
        await eventually(lambda: hub.subscriber_count == base + 26)
        del extra
    await eventually(lambda: hub.subscriber_count == base + 25)
    for call in calls[25:]:
        call.cancel()
    await eventually(lambda: hub.subscriber_count == base)
    assert all(not s.symbols & {"ZTS7"} for s in hub.subscriptions())
