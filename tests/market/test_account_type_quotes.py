"""Quotes with an account type's spread (GetQuote and StreamQuotes `account_type`): a Raw
Spread quote is tighter than the Standard one by the markup it does not pay, and it is the
price the Trading engine fills a Raw Spread account at."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
import pytest_asyncio
from exness.market.v1 import market_pb2, market_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from services.market.main import MarketApp
from services.market.quote_rules import QuoteValidator
from services.market.typed_quotes import typed_quote
from services.trading.model import AccountKind, Side
from tests.market.conftest import eventually, publish, quote_request
from tests.support.grpc_errors import failure_of
from tests.trading.support import account_types, market, typed_engine

ON_SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")
SYMBOL = "ZTACT"  # markup 0.00010, 5 decimals


@pytest_asyncio.fixture(loop_scope="session")
async def raw_spread_terms(
    db_pool: AsyncConnectionPool, market_app: MarketApp, test_instruments: list[str]
) -> AsyncIterator[None]:
    async with db_pool.connection() as conn:
        await conn.execute(
            "INSERT INTO account_type_terms VALUES ('raw_spread', %s, 0, 3.50)", (SYMBOL,)
        )
    await market_app.catalog.refresh()
    yield
    async with db_pool.connection() as conn:
        await conn.execute("DELETE FROM account_type_terms WHERE symbol = %s", (SYMBOL,))


@ON_SESSION_LOOP
@pytest.mark.usefixtures("raw_spread_terms")
async def test_raw_spread_quotes_are_tighter_than_standard(
    market_stub: market_pb2_grpc.MarketDataServiceStub, market_app: MarketApp
) -> None:
    published = await QuoteValidator(market_app.catalog).check(
        quote_request(SYMBOL, "1.10000", "1.10010", time.time_ns())
    )
    assert isinstance(published, market_pb2.QuoteEvent)
    assert published.spread_markup == "0.0001"  # what the engine measures types' spreads from
    await publish(market_stub, [quote_request(SYMBOL, "1.10000", "1.10010", time.time_ns())])
    await eventually(lambda: market_app.hub.latest(SYMBOL) is not None)

    standard = (await market_stub.GetQuote(market_pb2.GetQuoteRequest(symbol=SYMBOL))).quote
    raw = (
        await market_stub.GetQuote(
            market_pb2.GetQuoteRequest(symbol=SYMBOL, account_type="raw_spread")
        )
    ).quote
    assert (standard.bid, standard.ask) == ("1.09995", "1.10015")  # the default markup
    assert (raw.bid, raw.ask) == ("1.10000", "1.10010")  # none: the exchange's spread
    pro = await market_stub.GetQuote(market_pb2.GetQuoteRequest(symbol=SYMBOL, account_type="pro"))
    assert pro.quote.bid == standard.bid  # Pro has no terms on this test symbol: the default

    stream = market_stub.StreamQuotes(
        market_pb2.StreamQuotesRequest(symbols=[SYMBOL], account_type="raw_spread")
    )
    first = await asyncio.wait_for(stream.read(), 5)
    assert (first.quote.bid, first.quote.ask) == ("1.10000", "1.10010")
    await publish(market_stub, [quote_request(SYMBOL, "1.10020", "1.10030", time.time_ns())])
    second = await asyncio.wait_for(stream.read(), 5)
    assert (second.quote.bid, second.quote.ask) == ("1.10020", "1.10030")
    stream.cancel()


@ON_SESSION_LOOP
async def test_an_unknown_account_type_is_invalid(
    market_stub: market_pb2_grpc.MarketDataServiceStub,
) -> None:
    for call in (
        market_stub.GetQuote(market_pb2.GetQuoteRequest(symbol="ZTS8", account_type="gold")),
        market_stub.StreamQuotes(
            market_pb2.StreamQuotesRequest(symbols=["ZTS8"], account_type="gold")
        ).read(),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        failure = failure_of(caught.value)
        assert (failure.code, failure.reason, list(failure.fields)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "UNKNOWN_ACCOUNT_TYPE",
            ["account_type"],
        )


@pytest.mark.parametrize("type_name", ["standard", "pro", "raw_spread", "zero"])
def test_the_engine_fills_each_type_at_the_quote_marketdata_shows_it(type_name: str) -> None:
    engine, _ = typed_engine()
    spec = engine.instruments["EURUSD"]
    published = market_pb2.Quote(symbol="EURUSD", bid="1.08500", ask="1.08512")
    shown = typed_quote(published, spec, account_types()[type_name])
    now = datetime.now(UTC)
    engine.on_quote("EURUSD", Decimal("1.08500"), Decimal("1.08512"), now, now)
    account = engine.create_account("alice", type_name, AccountKind.DEMO, 0, False, now)
    engine.deposit(account, Decimal(10000), now)
    buy = engine.place_order(account, market("EURUSD", Side.BUY, "0.10"), now).position
    sell = engine.place_order(account, market("EURUSD", Side.SELL, "0.10"), now).position
    assert buy is not None
    assert sell is not None
    assert (buy.open_price, sell.open_price) == (Decimal(shown.ask), Decimal(shown.bid))
