"""What every price source produces, and the pieces they share: counters, reconnect backoff
and the bounded buffer between the sources and the PublishQuotes stream."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RawQuote:
    """An exchange quote before the broker's markup; prices as the exchange wrote them."""

    symbol: str  # platform symbol, e.g. "BTCUSD"
    bid: str
    ask: str
    time_ns: int  # exchange time (or receive time when the feed carries none)


@dataclass
class FeedStats:
    """Counters of one source; `skipped` holds malformed/unknown/control messages by reason."""

    received: int = 0
    emitted: int = 0
    connects: int = 0
    disconnects: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "emitted": self.emitted,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "skipped": dict(self.skipped),
        }


class QuoteBuffer:
    """Bounded FIFO between the sources and the publisher.

    Paced sources (synthetic, replay) wait when it is full, so no quote of a tape is lost; live
    exchange feeds use `put_nowait_drop_oldest`, because falling behind a live market is worse
    than skipping quotes that are already stale. `close()` marks the end of a finite source.
    """

    def __init__(self, maxsize: int = 10_000) -> None:
        self._items: deque[RawQuote] = deque()
        self._maxsize = maxsize
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self.closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, quote: RawQuote) -> None:
        while len(self._items) >= self._maxsize:
            self._not_full.clear()
            await self._not_full.wait()
        self._items.append(quote)
        self._not_empty.set()

    def put_nowait_drop_oldest(self, quote: RawQuote) -> None:
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(quote)
        self._not_empty.set()

    def close(self) -> None:
        self.closed = True
        self._not_empty.set()

    async def get(self) -> RawQuote | None:
        """The next quote; None once closed and empty."""
        while not self._items:
            if self.closed:
                return None
            self._not_empty.clear()
            await self._not_empty.wait()
        quote = self._items.popleft()
        self._not_full.set()
        return quote


def now_ns() -> int:
    return time.time_ns()
