"""Quotes the observability tests publish through MarketData.PublishQuotes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from exness.market.v1 import market_pb2

PRICES = {"BTCUSD": ("60000.00", "60001.00"), "ETHUSD": ("3000.00", "3000.50")}


def quotes(symbols: list[str], stop: threading.Event) -> Iterator[market_pb2.PublishQuotesRequest]:
    """One quote of each symbol, then the first symbol alone every 0.3 s until `stop`."""
    sending = list(symbols)
    while True:
        for symbol in sending:
            quote = market_pb2.Quote(symbol=symbol, bid=PRICES[symbol][0], ask=PRICES[symbol][1])
            quote.time.GetCurrentTime()
            yield market_pb2.PublishQuotesRequest(source="test", quote=quote)
        sending = symbols[:1]
        if stop.wait(0.3):
            return
