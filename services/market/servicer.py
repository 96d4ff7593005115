"""MarketDataService: the RPC handlers. Reads are public; PublishQuotes needs the service
credential (as market.proto declares)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import grpc
from exness.market.v1 import market_pb2, market_pb2_grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from psycopg_pool import AsyncConnectionPool

from kit.data.account_types import AccountType
from kit.data.instruments import Instrument
from kit.data.kafka import trace_headers
from kit.data.sessions import hhmm
from kit.decimals import format_decimal
from kit.rpc.errors import invalid_field, not_found, unavailable
from services.market.candles import INTERVAL_SECONDS, read_candles
from services.market.fanout import QuoteHub
from services.market.instruments import InstrumentCatalog
from services.market.quote_producer import QuotePublisher
from services.market.quote_rules import QuoteValidator
from services.market.typed_quotes import typed_quote

log = logging.getLogger(__name__)
tracer = trace.get_tracer("exness.market")

SERVICE_NAME = "exness.market.v1.MarketDataService"

DEFAULT_CANDLE_LIMIT = 500
_CATEGORIES = {
    "crypto": market_pb2.INSTRUMENT_CATEGORY_CRYPTO,
    "forex": market_pb2.INSTRUMENT_CATEGORY_FOREX,
    "metal": market_pb2.INSTRUMENT_CATEGORY_METAL,
}


def instrument_message(spec: Instrument) -> market_pb2.Instrument:
    return market_pb2.Instrument(
        symbol=spec.symbol,
        description=spec.description,
        category=_CATEGORIES.get(spec.category, market_pb2.INSTRUMENT_CATEGORY_UNSPECIFIED),
        price_decimals=spec.price_decimals,
        contract_size=format_decimal(spec.contract_size),
        volume_min=format_decimal(spec.volume_min),
        volume_step=format_decimal(spec.volume_step),
        volume_max=format_decimal(spec.volume_max),
        max_leverage=spec.max_leverage,
        spread_markup=format_decimal(spec.spread_markup),
        quote_currency=spec.quote_currency,
        swap_type=int(spec.swap_type),  # type: ignore[arg-type]
        swap_long=format_decimal(spec.swap_long),
        swap_short=format_decimal(spec.swap_short),
        triple_swap_weekday=spec.triple_swap_weekday,
        sessions=[
            market_pb2.TradingSession(
                open_weekday=s.open_weekday,
                open_time=hhmm(s.open_minute),
                close_weekday=s.close_weekday,
                close_time=hhmm(s.close_minute),
            )
            for s in spec.sessions
        ],
    )


class PublishStats:
    """Totals over every PublishQuotes call of this process."""

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected: Counter[str] = Counter()


class MarketDataServicer(market_pb2_grpc.MarketDataServiceServicer):
    def __init__(
        self,
        pool: AsyncConnectionPool,
        catalog: InstrumentCatalog,
        hub: QuoteHub,
        publisher: QuotePublisher,
    ) -> None:
        self._pool = pool
        self._catalog = catalog
        self._hub = hub
        self._publisher = publisher
        self._validator = QuoteValidator(catalog)
        self.publish_stats = PublishStats()

    async def _instrument(self, symbol: str) -> Instrument:
        spec = await self._catalog.lookup(symbol)
        if spec is None:
            raise not_found("UNKNOWN_SYMBOL", f"{symbol} is not a listed instrument", symbol=symbol)
        return spec

    async def ListInstruments(
        self, request: market_pb2.ListInstrumentsRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.ListInstrumentsResponse:
        await self._catalog.refresh_if_stale()  # new listings appear within min_refresh_s
        return market_pb2.ListInstrumentsResponse(
            instruments=[instrument_message(s) for s in self._catalog.all()]
        )

    async def _account_type(self, name: str) -> AccountType | None:
        """The account type a quote request names (None: the default markup)."""
        if not name:
            return None
        account_type = await self._catalog.account_type(name)
        if account_type is None:
            raise invalid_field("account_type", f"no account type {name!r}", "UNKNOWN_ACCOUNT_TYPE")
        return account_type

    async def GetQuote(
        self, request: market_pb2.GetQuoteRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.GetQuoteResponse:
        spec = await self._instrument(request.symbol)
        account_type = await self._account_type(request.account_type)
        quote = self._hub.latest(spec.symbol)
        if quote is None:
            raise unavailable(
                "NO_QUOTE", f"no quote for {spec.symbol} has arrived yet", symbol=spec.symbol
            )
        if account_type is not None:
            quote = typed_quote(quote, spec, account_type)
        return market_pb2.GetQuoteResponse(quote=quote)

    async def GetCandles(
        self, request: market_pb2.GetCandlesRequest, context: grpc.aio.ServicerContext
    ) -> market_pb2.GetCandlesResponse:
        width = INTERVAL_SECONDS[request.interval]  # the pipeline checked it is defined
        limit = request.limit or DEFAULT_CANDLE_LIMIT
        now = datetime.now(UTC)
        end = _timestamp_field(request, "end_time") or now
        start = _timestamp_field(request, "start_time") or end - timedelta(seconds=width * limit)
        if start >= end:
            raise invalid_field("start_time", "must be before end_time")
        spec = await self._instrument(request.symbol)
        async with self._pool.connection() as conn:
            rows = await read_candles(conn, spec.symbol, width, start, end, limit)
        response = market_pb2.GetCandlesResponse(symbol=spec.symbol, interval=request.interval)
        places = spec.price_decimals
        for row in rows:
            candle = response.candles.add(
                open=format_decimal(row.open, places),
                high=format_decimal(row.high, places),
                low=format_decimal(row.low, places),
                close=format_decimal(row.close, places),
                tick_count=row.tick_count,
                closed=row.open_time + timedelta(seconds=width) <= now,
            )
            candle.open_time.FromDatetime(row.open_time)
        return response

    async def StreamQuotes(
        self, request: market_pb2.StreamQuotesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[market_pb2.StreamQuotesResponse]:
        symbols = list(dict.fromkeys(request.symbols))
        specs = {symbol: await self._instrument(symbol) for symbol in symbols}
        account_type = await self._account_type(request.account_type)
        subscription = self._hub.subscribe(symbols)
        try:
            while True:
                for message in await subscription.next_batch():
                    if account_type is not None:
                        quote = message.quote
                        message = market_pb2.StreamQuotesResponse(
                            quote=typed_quote(quote, specs[quote.symbol], account_type)
                        )
                    yield message
        finally:
            # Reached on cancel, on client disconnect and on server shutdown alike.
            self._hub.unsubscribe(subscription)

    async def PublishQuotes(
        self,
        request_iterator: AsyncIterator[market_pb2.PublishQuotesRequest],
        context: grpc.aio.ServicerContext,
    ) -> market_pb2.PublishQuotesResponse:
        accepted = 0
        rejected: Counter[str] = Counter()
        stats = self.publish_stats
        try:
            async for request in request_iterator:
                if request.traceparent:  # a quote the poller traces
                    with _quote_span(request):
                        reason = await self._publish_one(request, trace_headers())
                else:
                    reason = await self._publish_one(request, None)
                if reason is not None:
                    rejected[reason] += 1
                    stats.rejected[reason] += 1
                    continue
                accepted += 1
                stats.accepted += 1
            await self._publisher.flush()
        finally:
            log.info(
                "publish stream ended", extra={"accepted": accepted, "rejected": dict(rejected)}
            )
        return market_pb2.PublishQuotesResponse(accepted=accepted, rejected=dict(rejected))

    async def _publish_one(
        self, request: market_pb2.PublishQuotesRequest, headers: list[tuple[str, bytes]] | None
    ) -> str | None:
        """Validates and publishes one quote; the reason it was rejected, if it was."""
        outcome = await self._validator.check(request)
        if isinstance(outcome, str):
            return outcome
        await self._publisher.publish(outcome, headers)
        return None


def _quote_span(request: market_pb2.PublishQuotesRequest) -> Any:
    return tracer.start_as_current_span(
        "PublishQuotes quote",
        context=propagate.extract({"traceparent": request.traceparent}),
        kind=SpanKind.CONSUMER,
        attributes={"exness.symbol": request.quote.symbol, "exness.source": request.source},
    )


def _timestamp_field(
    message: market_pb2.GetCandlesRequest, name: Literal["start_time", "end_time"]
) -> datetime | None:
    if not message.HasField(name):
        return None
    value = getattr(message, name)
    try:
        return value.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError) as exc:
        raise invalid_field(name, "is not a valid time") from exc
