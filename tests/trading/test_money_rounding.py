"""One rounding rule for money: the P&L a position shows at a quote is the P&L closing it at
that quote realises, to the cent, and no amount is ever printed as "-0.00"."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kit.decimals import format_decimal
from services.trading.codec import account_pb, position_pb, trade_pb
from services.trading.model import Side
from tests.trading.support import D, funded, market, new_engine, quote


@pytest.mark.parametrize(
    ("bid", "shown"),
    [
        ("65010.50", "0.01"),  # 0.01 lot x 0.50 = 0.005: half a cent, up
        ("65009.50", "-0.01"),  # -0.005: half a cent, away from zero
        ("65009.70", "0.00"),  # -0.003: rounds to zero, printed without a sign
    ],
)
def test_shown_pnl_is_the_realised_pnl_at_the_same_quote(bid: str, shown: str) -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000.00", "65010.00")
    opened = engine.place_order(account, market("BTCUSD", Side.BUY, "0.01"), clock.now).position
    assert opened is not None
    quote(engine, clock, "BTCUSD", bid, str(D(bid) + 10))
    position = engine.open_position(account, opened.position_id)
    assert position is not None
    message = position_pb(position, engine.quote("BTCUSD"))
    assert message.unrealized_pnl == shown
    assert account_pb(engine.view(account)).floating_pnl == shown
    trade = engine.close_position(account, opened.position_id, None, clock.now).trade
    assert trade_pb(trade).realized_pnl == shown
    assert format_decimal(trade.realized_pnl, 2) == shown


@pytest.mark.parametrize("value", ["-0.001", "-0.004", "-0", "-0.00"])
def test_never_minus_zero(value: str) -> None:
    assert format_decimal(Decimal(value), 2) == "0.00"
    assert format_decimal(Decimal(value), 0) == "0"
