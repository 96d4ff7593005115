"""Hedged margin (docs/trading-rules.md): opposite positions on one symbol need margin only for
the unhedged volume, and the margin check, the figures and stop-out all use it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kit.refusal import Refusal
from services.trading.engine import Engine
from services.trading.model import CloseReason, Event, EventType, Side
from tests.trading.support import Clock, D, funded, instruments, market, new_engine, quote

BUY, SELL = Side.BUY, Side.SELL


def test_full_hedge_needs_no_margin_then_partial_then_one_leg_closed() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    buy = engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now).position
    sell = engine.place_order(account, market("BTCUSD", SELL, "1"), clock.now).position
    assert buy is not None
    assert sell is not None
    # Each position keeps the margin it would need alone...
    assert (buy.margin, sell.margin) == (D("650.10"), D("650.00"))
    # ...but fully hedged, the account holds none.
    view = engine.view(account)
    assert view.margin == 0
    assert view.equity == D("9980")  # both legs paid the 10.00 spread
    assert view.free_margin == D("9980")
    assert view.margin_level is None

    # Close 0.6 of the SELL: 1 BUY against 0.4 SELL, the BUY's 0.6 unhedged lot is margined.
    engine.close_position(account, sell.position_id, D("0.6"), clock.now)
    view = engine.view(account)
    assert view.margin == D("390.06")  # 650.10 x 0.6 / 1
    # balance 10000 - 6 (0.6 x the 10.00 spread realised); BUY -10, SELL 0.4 x -10
    assert view.equity == D("9980")
    assert view.free_margin == D("9589.94")
    assert view.margin_level == D("9980") / D("390.06") * 100

    # Close the BUY leg: the SELL's 0.4 lot stands alone, at its own margin (0.4 x 65000 / 100).
    engine.close_position(account, buy.position_id, None, clock.now)
    view = engine.view(account)
    assert view.margin == D("260.00")
    assert account.margin == D("260.00")


def test_opening_a_hedging_leg_needs_no_free_margin() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock, amount="700")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)  # margin 650.10
    assert engine.view(account).free_margin == D("39.90")
    # A second BUY needs 650.10 more: refused.
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)
    assert exc.value.reason == "INSUFFICIENT_MARGIN"
    # The opposite leg hedges it: the margin falls to zero, so it is accepted.
    hedge = engine.place_order(account, market("BTCUSD", SELL, "1"), clock.now)
    assert hedge.position is not None
    view = engine.view(account)
    assert view.margin == 0
    assert view.free_margin == D("680.00")


def test_stop_out_uses_the_hedged_margin() -> None:
    groups = {s: replace(i, stop_out_level=D(50)) for s, i in instruments().items()}
    engine, clock = Engine(groups), Clock()
    account = funded(engine, clock, amount="700")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)
    engine.place_order(account, market("BTCUSD", SELL, "0.5"), clock.now)
    assert account.margin == D("325.05")  # 650.10 x 0.5 / 1, not 650.10 + 325.00
    engine.hand_over()
    # equity = 0.5 x bid - 31815: at bid 64230 it is 300, 92 % of the hedged margin (it would
    # be 31 % of the unhedged 975.10, below the 50 % stop-out level).
    quote(engine, clock, "BTCUSD", "64230", "64240")
    assert engine.view(account).equity == D("300")
    assert len(account.positions) == 2
    # At bid 63930 equity is 150, 46 % of 325.05: stopped out, the larger loss first.
    quote(engine, clock, "BTCUSD", "63930", "63940")
    stops = [
        e.trade
        for e in engine.hand_over().items
        if isinstance(e, Event) and e.type is EventType.STOP_OUT and e.trade
    ]
    assert (stops[0].side, stops[0].realized_pnl) == (BUY, D("-1080.00"))
    assert all(t.close_reason is CloseReason.STOP_OUT for t in stops)
