"""Price-indexed triggers, so a tick touches only what it triggers.

Every trigger is "fire when <bid|ask> <falls to|rises to> <level>". Per symbol there are four
sorted books, one per (price, direction); a tick pops entries from the crossed end of each book
until the first one that is not crossed. Cost per tick: O(fired x log n) plus four peeks, not
O(open positions).

What fires is identified by (kind, ref): a pending order, a position's SL, TP or trailing
stop step, or an account's margin watch (see engine.Engine._rearm).
"""

from __future__ import annotations

import enum
from decimal import Decimal
from itertools import count

from sortedcontainers import SortedList  # type: ignore[import-untyped]


class Book(enum.IntEnum):
    BID_FALL = 0  # fires when bid <= level
    BID_RISE = 1  # fires when bid >= level
    ASK_FALL = 2  # fires when ask <= level
    ASK_RISE = 3  # fires when ask >= level


class Kind(enum.IntEnum):
    # Processing order within one tick: pending orders fill, then SL/TP, then margin watches.
    ORDER = 0
    STOP_LOSS = 1
    TAKE_PROFIT = 2
    WATCH = 3
    TRAIL = 4  # a trailing stop's next step: move the stop-loss


_FALLS = (Book.BID_FALL, Book.ASK_FALL)


class TriggerIndex:
    def __init__(self) -> None:
        # symbol -> four SortedLists of (key, handle). Falling books store -level so every book
        # fires from its low end: key <= threshold.
        self._books: dict[str, tuple[SortedList, SortedList, SortedList, SortedList]] = {}
        # handle -> (symbol, book, key, kind, ref)
        self._entries: dict[int, tuple[str, Book, Decimal, Kind, int]] = {}
        self._handles = count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, symbol: str, book: Book, level: Decimal, kind: Kind, ref: int) -> int:
        books = self._books.get(symbol)
        if books is None:
            books = self._books[symbol] = (SortedList(), SortedList(), SortedList(), SortedList())
        handle = next(self._handles)
        key = -level if book in _FALLS else level
        books[book].add((key, handle))
        self._entries[handle] = (symbol, book, key, kind, ref)
        return handle

    def remove(self, handle: int) -> None:
        entry = self._entries.pop(handle, None)
        if entry is not None:
            symbol, book, key, _, _ = entry
            self._books[symbol][book].remove((key, handle))

    def pop_fired(self, symbol: str, bid: Decimal, ask: Decimal) -> list[tuple[Kind, int, int]]:
        """Removes and returns (kind, handle, ref) of every entry crossed by this quote, in
        processing order (kind, then the order they were indexed)."""
        books = self._books.get(symbol)
        if books is None:
            return []
        fired: list[tuple[Kind, int, int]] = []
        for book, threshold in (
            (Book.BID_FALL, -bid),
            (Book.BID_RISE, bid),
            (Book.ASK_FALL, -ask),
            (Book.ASK_RISE, ask),
        ):
            entries = books[book]
            while entries and entries[0][0] <= threshold:
                _, handle = entries.pop(0)
                _, _, _, kind, ref = self._entries.pop(handle)
                fired.append((kind, handle, ref))
        fired.sort()
        return fired
