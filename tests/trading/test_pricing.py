"""Per-account-type pricing on its own (services/trading/pricing.py), without an engine: the
quote each type trades at, trigger levels translated to the published quote and back, the
commission per side, and following a change of the default markup."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from services.trading.model import Quote
from services.trading.pricing import (
    TypePricing,
    published_level,
    quote_shifts,
    shifted_quote,
)
from services.trading.triggers import Book, Kind, TriggerIndex
from tests.trading.support import T0, account_types, instruments

D = Decimal
# The seeded default markups, which the published quotes carry.
MARKUPS = {"BTCUSD": "10.00", "ETHUSD": "1.00", "SOLUSD": "0.050", "EURUSD": "0.00010"}
SPECS = {s: replace(i, spread_markup=D(MARKUPS.get(s, "0.20"))) for s, i in instruments().items()}
TYPES = account_types()
PUBLISHED = Quote("BTCUSD", D("65000.00"), D("65010.00"), T0)


def test_only_types_off_the_default_markup_have_shifts() -> None:
    shifts = quote_shifts(TYPES.values(), SPECS.values())
    assert not any(name == "standard" for name, _ in shifts)
    # Pro trades BTCUSD at 5.00 against the default 10.00: each side 2.50 tighter.
    assert shifts["pro", "BTCUSD"] == D("2.50")
    # Raw Spread at 0: each side 5.00 tighter.
    assert shifts["raw_spread", "BTCUSD"] == D("5.00")


def test_the_standard_type_trades_the_published_quote_itself() -> None:
    pricing = TypePricing(TYPES, SPECS.values())
    assert pricing.typed_quote("standard", PUBLISHED) is PUBLISHED
    assert not pricing.is_shifted("standard", "BTCUSD")
    assert "standard" not in pricing.shifted_types


def test_a_tighter_type_trades_inside_the_published_spread() -> None:
    pricing = TypePricing(TYPES, SPECS.values())
    pro = pricing.typed_quote("pro", PUBLISHED)
    assert (pro.bid, pro.ask) == (D("65002.50"), D("65007.50"))
    assert pro == shifted_quote(PUBLISHED, D("2.50"))
    assert pricing.is_shifted("pro", "BTCUSD")


@pytest.mark.parametrize("book", list(Book))
@pytest.mark.parametrize("published_bid", ["64990.00", "64995.00", "65000.00", "65005.00"])
def test_a_translated_level_fires_exactly_when_the_types_quote_crosses_it(
    book: Book, published_bid: str
) -> None:
    """The trigger index sees only published quotes: a level in a type's prices, translated,
    must fire on the same published quotes as the untranslated level on the type's quotes."""
    shift, level = D("2.50"), D("64997.50")
    published = Quote("BTCUSD", D(published_bid), D(published_bid) + 10, T0)
    typed = shifted_quote(published, shift)

    def fires(at: Decimal, quote: Quote) -> bool:
        index = TriggerIndex()
        index.add("BTCUSD", book, at, Kind.ORDER, 1)
        return bool(index.pop_fired("BTCUSD", quote.bid, quote.ask))

    assert fires(published_level(book, level, shift), published) == fires(level, typed)


def test_commission_rounds_to_the_cent_and_none_is_zero() -> None:
    pricing = TypePricing(TYPES, SPECS.values())
    assert pricing.commission("raw_spread", "EURUSD", D("0.01")) == D("0.04")  # 0.035, half up
    assert pricing.commission("zero", "BTCUSD", D("2")) == D("6.50")
    assert pricing.commission("zero", "XAUUSD", D("1")) == D("5.00")
    assert pricing.commission("standard", "XAUUSD", D("100")) == 0


def test_following_a_new_default_markup_reports_the_types_that_moved() -> None:
    pricing = TypePricing(TYPES, SPECS.values())
    # The default BTCUSD markup drops to Pro's 5.00: Pro now trades the published quote,
    # Raw Spread and Zero move closer, Standard follows the published quote as always.
    moved = pricing.follow(replace(SPECS["BTCUSD"], spread_markup=D("5.00")))
    assert moved == {"pro", "raw_spread", "zero"}
    assert pricing.typed_quote("pro", PUBLISHED) is PUBLISHED
    assert not pricing.is_shifted("pro", "BTCUSD")
    assert pricing.is_shifted("pro", "ETHUSD")  # other symbols untouched
    raw = pricing.typed_quote("raw_spread", PUBLISHED)
    assert (raw.bid, raw.ask) == (D("65002.50"), D("65007.50"))
    # The same markup again moves nothing.
    assert pricing.follow(replace(SPECS["BTCUSD"], spread_markup=D("5.00"))) == set()
