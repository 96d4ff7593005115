"""Quote fan-out: the latest quote per symbol and the StreamQuotes subscribers.

Each subscriber has a buffer holding at most one pending quote per symbol it follows: a new
quote replaces the pending one of its symbol (conflation). A slow or stalled reader therefore
costs at most `len(symbols)` messages here, whatever the quote rate, and it never receives an
older quote after a newer one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from exness.market.v1 import market_pb2

from services.market.quote_rules import timestamp_ns


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

    def __init__(self) -> None:
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
        message = self._latest.get(symbol)
        return message.quote if message is not None else None

    def publish(self, quote: market_pb2.Quote) -> None:
        """A quote from the feed; an older one than what we have (a replayed or re-delivered
        message) is dropped."""
        self.received += 1
        symbol = quote.symbol
        quote_ns = timestamp_ns(quote.time)
        if quote_ns < self._latest_ns.get(symbol, 0):
            self.stale += 1
            return
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
