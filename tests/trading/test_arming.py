"""Arming and disarming triggers on their own (services/trading/arming.py), on a real trigger
index without an engine: every level set is indexed once with its handle kept, fires on the
published quote that crosses it in the account type's prices, and disarming removes them all."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from services.trading.arming import arm_order, arm_position, disarm_position
from services.trading.model import Order, OrderType, Position, Side
from services.trading.pricing import TypePricing
from services.trading.triggers import Kind, TriggerIndex
from tests.trading.support import T0, account_types, instruments

D = Decimal
SPECS = {**instruments()}
SPECS["BTCUSD"] = replace(SPECS["BTCUSD"], spread_markup=D("10.00"))
PRICING = TypePricing(account_types(), SPECS.values())
TICK = SPECS["BTCUSD"].tick_size


def buy_position(
    stop_loss: Decimal | None = None,
    take_profit: Decimal | None = None,
    trailing_stop: Decimal | None = None,
) -> Position:
    return Position(
        5,
        7,
        3,
        "BTCUSD",
        Side.BUY,
        D(1),
        D(65010),
        100,
        D(650),
        D(1),
        T0,
        stop_loss,
        take_profit,
        trailing_stop=trailing_stop,
    )


def test_every_level_set_is_armed_and_disarmed() -> None:
    index = TriggerIndex()
    position = buy_position(stop_loss=D(64900), take_profit=D(66000), trailing_stop=D(100))
    arm_position(index, PRICING, "standard", position, TICK)
    assert len(index) == 3
    assert 0 not in (position.sl_handle, position.tp_handle, position.trail_handle)
    disarm_position(index, position)
    assert len(index) == 0
    assert (position.sl_handle, position.tp_handle, position.trail_handle) == (0, 0, 0)
    disarm_position(index, position)  # nothing armed: nothing to do


def test_no_levels_arm_nothing() -> None:
    index = TriggerIndex()
    arm_position(index, PRICING, "standard", buy_position(), TICK)
    assert len(index) == 0


def test_a_standard_buys_levels_fire_on_the_published_bid() -> None:
    index = TriggerIndex()
    position = buy_position(stop_loss=D(64900), take_profit=D(66000), trailing_stop=D(100))
    arm_position(index, PRICING, "standard", position, TICK)
    assert index.pop_fired("BTCUSD", D("64900.01"), D("65000")) == []
    # The bid rises to stop-loss + distance + one tick: the trailing step fires.
    assert index.pop_fired("BTCUSD", D("65000.01"), D("65010.01")) == [
        (Kind.TRAIL, position.trail_handle, 5)
    ]
    assert index.pop_fired("BTCUSD", D("64900"), D("64910")) == [
        (Kind.STOP_LOSS, position.sl_handle, 5)
    ]


def test_a_raw_spread_accounts_levels_are_translated_to_the_published_quote() -> None:
    # Raw Spread's bid is the published bid + 5.00: its stop-loss at 64900 is crossed when
    # the published bid falls to 64895, not before.
    index = TriggerIndex()
    position = buy_position(stop_loss=D(64900))
    arm_position(index, PRICING, "raw_spread", position, TICK)
    assert index.pop_fired("BTCUSD", D("64895.01"), D("64905.01")) == []
    assert index.pop_fired("BTCUSD", D("64895"), D("64905")) == [
        (Kind.STOP_LOSS, position.sl_handle, 5)
    ]


def test_a_pending_order_is_armed_at_its_price() -> None:
    index = TriggerIndex()
    order = Order(9, 7, "BTCUSD", Side.BUY, OrderType.LIMIT, D(1), 100, T0, price=D(64000))
    handle = arm_order(index, PRICING, "standard", order)
    assert index.pop_fired("BTCUSD", D("63995"), D("64000.01")) == []
    assert index.pop_fired("BTCUSD", D("63990"), D("64000")) == [(Kind.ORDER, handle, 9)]
