"""Validation of raw feed quotes and the broker's spread markup (PublishQuotes' rules)."""

from __future__ import annotations

import time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from exness.market.v1 import market_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from kit.data.instruments import Instrument
from kit.decimals import format_decimal, parse_decimal
from services.market.instruments import InstrumentCatalog

# Rejection reasons, as counted in PublishQuotesResponse.rejected.
MALFORMED = "malformed"
UNKNOWN_SYMBOL = "unknown_symbol"
NON_POSITIVE = "non_positive"
CROSSED = "crossed"
TIME_BACKWARDS = "time_backwards"
# A quote stamped far ahead of our clock would block every honest quote after it (they would
# all look like they go back in time), so it is refused.
TIME_IN_FUTURE = "time_in_future"

MAX_FUTURE_SKEW_NS = 60 * 1_000_000_000
_MAX_PRICE_TEXT = 40


def timestamp_ns(ts: Timestamp) -> int:
    # Not Timestamp.ToNanoseconds(): on upb that is Python that also range-checks, raising
    # ValueError past year 9999 (a quote check() must reject as TIME_IN_FUTURE), and it costs
    # about 70% more on this per-quote path.
    return ts.seconds * 1_000_000_000 + ts.nanos


def apply_markup(bid: Decimal, ask: Decimal, spec: Instrument) -> tuple[Decimal, Decimal]:
    """Widens the spread by the instrument's markup, half on each side of the mid, and rounds
    to its price decimals away from the mid (bid down, ask up) so the markup is never eaten
    by rounding."""
    half = spec.spread_markup / 2
    tick = spec.tick_size
    return (
        (bid - half).quantize(tick, rounding=ROUND_FLOOR),
        (ask + half).quantize(tick, rounding=ROUND_CEILING),
    )


class QuoteValidator:
    """Judges each raw quote; remembers the last accepted time per symbol (for this process)."""

    def __init__(self, catalog: InstrumentCatalog) -> None:
        self._catalog = catalog
        self._last_ns: dict[str, int] = {}

    async def check(
        self, request: market_pb2.PublishQuotesRequest, now_ns: int | None = None
    ) -> market_pb2.QuoteEvent | str:
        """The event to publish (with markup), or the reason the quote is rejected."""
        quote = request.quote
        if not request.HasField("quote") or not quote.HasField("time"):
            return MALFORMED
        if len(quote.bid) > _MAX_PRICE_TEXT or len(quote.ask) > _MAX_PRICE_TEXT:
            return MALFORMED
        try:
            bid = parse_decimal(quote.bid)
            ask = parse_decimal(quote.ask)
        except ValueError:
            return MALFORMED
        if not 0 <= quote.time.nanos < 1_000_000_000 or quote.time.seconds <= 0:
            return MALFORMED
        spec = await self._catalog.lookup(quote.symbol) if quote.symbol else None
        if spec is None:
            return UNKNOWN_SYMBOL
        if bid <= 0 or ask <= 0:
            return NON_POSITIVE
        if ask < bid:
            return CROSSED
        quote_ns = timestamp_ns(quote.time)
        now_ns = time.time_ns() if now_ns is None else now_ns
        if quote_ns > now_ns + MAX_FUTURE_SKEW_NS:
            return TIME_IN_FUTURE
        if quote_ns < self._last_ns.get(spec.symbol, 0):
            return TIME_BACKWARDS
        marked_bid, marked_ask = apply_markup(bid, ask, spec)
        if marked_bid <= 0:
            return NON_POSITIVE
        self._last_ns[spec.symbol] = quote_ns
        event = market_pb2.QuoteEvent(source=request.source[:32])
        event.quote.symbol = spec.symbol
        event.quote.bid = format_decimal(marked_bid, spec.price_decimals)
        event.quote.ask = format_decimal(marked_ask, spec.price_decimals)
        event.quote.time.CopyFrom(quote.time)
        event.publish_time.FromNanoseconds(now_ns)
        event.spread_markup = format_decimal(spec.spread_markup)
        return event
