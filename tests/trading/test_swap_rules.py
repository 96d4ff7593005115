"""Swap rules on their own (services/trading/swaps.py), without an engine: which rollovers are
due since the last one charged, and what one rollover charges a position, valued at the close
price of the account's quote or, with none yet, at its open price."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from kit.data.instruments import SwapType
from services.trading.model import Position, Quote, Side
from services.trading.swaps import ONE_DAY, position_swap, rollovers_due
from tests.trading.support import T0, instruments

D = Decimal
MONDAY_ROLLOVER = datetime(2025, 1, 6, 22, 0, tzinfo=UTC)
TUESDAY_ROLLOVER = MONDAY_ROLLOVER + ONE_DAY
SATURDAY_ROLLOVER = datetime(2025, 1, 11, 22, 0, tzinfo=UTC)
SPECS = instruments()
BTC = replace(
    SPECS["BTCUSD"], swap_type=SwapType.PERCENT_PER_YEAR, swap_long=D(-36), swap_short=D(-18)
)
EUR = replace(
    SPECS["EURUSD"],
    swap_type=SwapType.POINTS,
    swap_long=D("-8.5"),
    swap_short=D("3.2"),
    triple_swap_weekday=3,
)


def position(side: Side, symbol: str, volume: str, open_price: str, contract: str) -> Position:
    units = D(volume) * D(contract)
    return Position(1, 7, 1, symbol, side, D(volume), D(open_price), 100, D(0), units, T0)


def test_nothing_is_due_until_the_next_rollover() -> None:
    assert list(rollovers_due(MONDAY_ROLLOVER, MONDAY_ROLLOVER)) == []
    assert list(rollovers_due(MONDAY_ROLLOVER, TUESDAY_ROLLOVER - ONE_DAY / 2)) == []


def test_every_rollover_passed_is_due_once_oldest_first() -> None:
    assert list(rollovers_due(MONDAY_ROLLOVER, TUESDAY_ROLLOVER)) == [TUESDAY_ROLLOVER]
    assert list(rollovers_due(MONDAY_ROLLOVER, MONDAY_ROLLOVER + 3 * ONE_DAY)) == [
        MONDAY_ROLLOVER + ONE_DAY,
        MONDAY_ROLLOVER + 2 * ONE_DAY,
        MONDAY_ROLLOVER + 3 * ONE_DAY,
    ]


def test_percent_swap_is_valued_at_the_close_price_of_the_quote() -> None:
    long = position(Side.BUY, "BTCUSD", "1", "60000", "1")
    quote = Quote("BTCUSD", D(72000), D(72010), T0)
    # 1 x 72000 (the bid a BUY closes at) x -36% / 360 = -72.00
    assert position_swap(BTC, long, quote, TUESDAY_ROLLOVER) == D("-72.00")
    short = position(Side.SELL, "BTCUSD", "1", "60000", "1")
    # 1 x 72010 (the ask a SELL closes at) x -18% / 360 = -36.005, half up
    assert position_swap(BTC, short, quote, TUESDAY_ROLLOVER) == D("-36.01")


def test_without_a_quote_the_open_price_values_it() -> None:
    long = position(Side.BUY, "BTCUSD", "1", "60000", "1")
    assert position_swap(BTC, long, None, TUESDAY_ROLLOVER) == D("-60.00")


def test_forex_points_nothing_at_a_weekend_rollover_triple_on_wednesday() -> None:
    long = position(Side.BUY, "EURUSD", "1", "1.08500", "100000")
    # 100000 units x -8.5 points x 0.00001
    assert position_swap(EUR, long, None, TUESDAY_ROLLOVER) == D("-8.50")
    assert position_swap(EUR, long, None, TUESDAY_ROLLOVER + ONE_DAY) == D("-25.50")
    assert position_swap(EUR, long, None, SATURDAY_ROLLOVER) == 0
    short = position(Side.SELL, "EURUSD", "1", "1.08500", "100000")
    assert position_swap(EUR, short, None, TUESDAY_ROLLOVER) == D("3.20")
