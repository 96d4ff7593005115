"""Per-account-type pricing: the quote each account type trades at, where its trigger levels sit
in the published quote's terms, and the commission it pays.

The published quote carries each instrument's default spread markup. A type with another markup
trades the same quote moved by a shift: its bid that much above, its ask that much below (a
negative shift widens the spread). Only (type, symbol) pairs with a non-zero shift are kept, so
the common case, a type trading at the default markup, costs one dictionary miss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from kit.data.account_types import AccountType
from kit.data.instruments import Instrument
from services.trading.model import ZERO, Quote, money
from services.trading.triggers import Book

_BID_BOOKS = (Book.BID_FALL, Book.BID_RISE)


def quote_shifts(
    account_types: Iterable[AccountType], instruments: Iterable[Instrument]
) -> dict[tuple[str, str], Decimal]:
    """(type, symbol) -> shift, for every pair whose spread differs from the default markup."""
    instruments = list(instruments)
    return {
        (t.name, i.symbol): shift
        for t in account_types
        for i in instruments
        if (shift := t.quote_shift(i))
    }


def shifted_quote(quote: Quote, shift: Decimal) -> Quote:
    """The published quote as a type `shift` away from the default markup sees it."""
    return Quote(quote.symbol, quote.bid + shift, quote.ask - shift, quote.time)


def published_level(book: Book, price: Decimal, shift: Decimal) -> Decimal:
    """A level in a shifted type's prices as a level of the published quote the trigger index
    is fed with: the type's bid is bid + shift and its ask is ask - shift."""
    return price - shift if book in _BID_BOOKS else price + shift


class TypePricing:
    """The shifts of every account type on every instrument, kept current as markups change."""

    __slots__ = ("_shifts", "_types", "shifted_types")

    def __init__(
        self, account_types: Mapping[str, AccountType], instruments: Iterable[Instrument]
    ) -> None:
        self._types = account_types
        self._shifts = quote_shifts(account_types.values(), instruments)
        # Types with any shift at all: equity of every other account needs no per-symbol lookup.
        self.shifted_types = {name for name, _ in self._shifts}

    def typed_quote(self, account_type: str, quote: Quote) -> Quote:
        """The published quote with the account type's spread (the same object when the type
        trades at the default markup)."""
        shift = self._shifts.get((account_type, quote.symbol))
        if shift is None:
            return quote
        return shifted_quote(quote, shift)

    def is_shifted(self, account_type: str, symbol: str) -> bool:
        return (account_type, symbol) in self._shifts

    def book_price(self, account_type: str, symbol: str, book: Book, price: Decimal) -> Decimal:
        """A trigger level in the account type's prices, in the published quote's terms."""
        shift = self._shifts.get((account_type, symbol))
        if shift is None:
            return price
        return published_level(book, price, shift)

    def commission(self, account_type: str, symbol: str, volume: Decimal) -> Decimal:
        """One side's commission of `volume` lots on `symbol` for the account type (positive,
        in cents; no commission for most types, so no rounding either)."""
        rate = self._types[account_type].terms_of(symbol).commission_per_lot
        return money(volume * rate) if rate else ZERO

    def follow(self, inst: Instrument) -> set[str]:
        """Takes `inst` (with its new default markup) into account; returns the types whose
        shift on it changed, whose triggers on it must be indexed again."""
        moved = set()
        for account_type in self._types.values():
            key = (account_type.name, inst.symbol)
            shift = account_type.quote_shift(inst)
            if self._shifts.get(key, ZERO) != shift:
                moved.add(account_type.name)
            if shift:
                self._shifts[key] = shift
            else:
                self._shifts.pop(key, None)
        self.shifted_types = {name for name, _ in self._shifts}
        return moved
