"""Quote fan-out: the latest quote per symbol and the StreamQuotes subscribers.

Each subscriber has a buffer holding at most one pending quote per symbol it follows: a new
quote replaces the pending one of its symbol (conflation). A slow or stalled reader therefore
costs at most `len(symbols)` messages here, whatever the quote rate, and it never receives an
older quote after a newer one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from exness.market.v1 import market_pb2

from services.market.quote_rules import timestamp_ns

log = logging.getLogger(__name__)


class Subscription:
    def __init__(self, symbols: Iterable[str]) -> None:
        self.symbols = frozenset(symbols)
        self._pending: dict[str, market_pb2.StreamQuotesResponse] = {}
        self._wake = asyncio.Event()
        self.delivered = 0
        # Quotes replaced before the reader took them (the reader was slower than the feed).
        self.conflated = 0

    def pending(self) -> dict[str, market_pb2.StreamQuotesResponse]:
        """The quotes waiting for the reader, by symbol (a copy)."""
        return dict(self._pending)

    def offer(self, symbol: str, message: market_pb2.StreamQuotesResponse) -> None:
        if symbol in self._pending:
            self.conflated += 1
        self._pending[symbol] = message
        self._wake.set()

    async def next_batch(self) -> list[market_pb2.StreamQuotesResponse]:
        """Waits for at least one pending quote and takes all of them."""
        while not self._pending:
            self._wake.clear()
            await self._wake.wait()
        batch = list(self._pending.values())
        self._pending.clear()
        self.delivered += len(batch)
        return batch


class QuoteHub:
    """Latest quote per symbol (GetQuote, the first messages of StreamQuotes) and the
    subscribers by symbol (one dict lookup per quote, then one `offer` per subscriber)."""

    def __init__(self, max_age_s: float = 10.0) -> None:
        # A quote older than this is served marked stale (Quote.stale).
        self.max_age_ns = int(max_age_s * 1e9)
        self._latest: dict[str, market_pb2.StreamQuotesResponse] = {}
        self._latest_ns: dict[str, int] = {}
        self._by_symbol: dict[str, set[Subscription]] = {}
        self._subscriptions: set[Subscription] = set()
        self.received = 0
        self.stale = 0
        # Conflated quotes of subscriptions already closed (open ones count their own).
        self.conflated_closed = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions)

    def latest_times_ns(self) -> dict[str, int]:
        """Time of the latest quote held, by symbol (a copy)."""
        return self._latest_ns.copy()

    def latest(self, symbol: str) -> market_pb2.Quote | None:
        """The newest quote, marked stale when it is older than the maximum age now."""
        message = self._latest.get(symbol)
        if message is None:
            return None
        if message.quote.stale or time.time_ns() - self._latest_ns[symbol] <= self.max_age_ns:
            return message.quote
        quote = market_pb2.Quote()
        quote.CopyFrom(message.quote)
        quote.stale = True
        return quote

    def mark_stale(self, now_ns: int | None = None) -> list[str]:
        """Symbols whose newest quote has just passed the maximum age: it is replaced by a
        copy marked stale and offered again to their subscribers, so a stream shows that
        the price stopped moving rather than going quiet. The symbols marked now."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        marked = []
        for symbol, message in self._latest.items():
            if message.quote.stale or now_ns - self._latest_ns[symbol] <= self.max_age_ns:
                continue
            stale = market_pb2.StreamQuotesResponse()
            stale.CopyFrom(message)
            stale.quote.stale = True
            self._latest[symbol] = stale
            for subscription in self._by_symbol.get(symbol, ()):
                subscription.offer(symbol, stale)
            marked.append(symbol)
        return marked

    async def mark_stale_forever(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            marked = self.mark_stale()
            if marked:
                log.warning("quotes went stale (no newer quote arrived)", extra={"symbols": marked})

    def publish(self, quote: market_pb2.Quote) -> None:
        """A quote from the feed; an older one than what we have (a replayed or re-delivered
        message) is dropped."""
        self.received += 1
        symbol = quote.symbol
        quote_ns = timestamp_ns(quote.time)
        if quote_ns < self._latest_ns.get(symbol, 0):
            self.stale += 1
            return
        if quote.stale:  # the mark is MarketData's to set, when serving
            quote = market_pb2.Quote(symbol=symbol, bid=quote.bid, ask=quote.ask, time=quote.time)
        message = market_pb2.StreamQuotesResponse(quote=quote)
        self._latest[symbol] = message
        self._latest_ns[symbol] = quote_ns
        for subscription in self._by_symbol.get(symbol, ()):
            subscription.offer(symbol, message)

    def subscribe(self, symbols: Iterable[str]) -> Subscription:
        subscription = Subscription(symbols)
        self._subscriptions.add(subscription)
        for symbol in subscription.symbols:
            self._by_symbol.setdefault(symbol, set()).add(subscription)
            current = self._latest.get(symbol)
            if current is not None:
                subscription.offer(symbol, current)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self.conflated_closed += subscription.conflated
        for symbol in subscription.symbols:
            followers = self._by_symbol.get(symbol)
            if followers is not None:
                followers.discard(subscription)
                if not followers:
                    del self._by_symbol[symbol]
