"""Account valuation on its own (services/trading/valuation.py), without an engine: equity is
the balance plus floating P&L at the price each side closes at (a BUY at the bid, a SELL at the
ask), with the account type's spread; a symbol with no quote yet adds nothing."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from services.trading.model import Account, Exposure, Position, Quote, Side
from services.trading.pricing import TypePricing
from services.trading.valuation import account_view, equity_of
from tests.trading.support import T0, account_types, instruments

D = Decimal
SPECS = {**instruments()}
SPECS["BTCUSD"] = replace(SPECS["BTCUSD"], spread_markup=D("10.00"))
PRICING = TypePricing(account_types(), SPECS.values())
QUOTES = {"BTCUSD": Quote("BTCUSD", D("65100.00"), D("65110.00"), T0)}


def account(kind: str, *legs: tuple[Side, str]) -> Account:
    acc = Account(7, "alice", 0, 100, D(10000), T0, account_type=kind)
    for n, (side, open_price) in enumerate(legs, 1):
        position = Position(n, 7, n, "BTCUSD", side, D(1), D(open_price), 100, D(650), D(1), T0)
        acc.exposure.setdefault("BTCUSD", Exposure()).add(position, 1)
        acc.margin += D(650)
    return acc


def test_no_positions_is_worth_its_balance() -> None:
    assert equity_of(account("standard"), QUOTES, PRICING) == D(10000)


def test_a_buy_is_valued_at_the_bid_and_a_sell_at_the_ask() -> None:
    assert equity_of(account("standard", (Side.BUY, "65010")), QUOTES, PRICING) == D(10090)
    assert equity_of(account("standard", (Side.SELL, "65000")), QUOTES, PRICING) == D(9890)


def test_a_tighter_type_is_valued_at_its_own_spread() -> None:
    # Raw Spread trades BTCUSD 5.00 inside each side of the published quote: bid 65105.
    assert equity_of(account("raw_spread", (Side.BUY, "65010")), QUOTES, PRICING) == D(10095)


def test_a_symbol_without_a_quote_adds_nothing() -> None:
    assert equity_of(account("standard", (Side.BUY, "60000")), {}, PRICING) == D(10000)


def test_the_view_carries_equity_floating_pnl_and_levels() -> None:
    acc = account("standard", (Side.BUY, "65010"))
    view = account_view(acc, equity_of(acc, QUOTES, PRICING), D(60), D(0))
    assert (view.balance, view.equity, view.floating_pnl) == (D(10000), D(10090), D(90))
    assert (view.margin, view.free_margin) == (D(650), D(9440))
    assert (view.margin_call_level, view.stop_out_level) == (D(60), D(0))
    assert (view.account_id, view.account_type) == (7, "standard")
