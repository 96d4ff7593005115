"""The trailing-stop rule on its own (services/trading/trailing.py), without an engine: where
the stop-loss sits at a price, that it only ever moves in the position's favour, the price at
which it moves next, and the distances refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit.refusal import Refusal
from services.trading.model import Side
from services.trading.trailing import check_trailing_stop, next_trail_step, trailed_stop
from services.trading.triggers import Book
from tests.trading.support import instruments

D = Decimal
BTC = instruments()["BTCUSD"]  # tick 0.01


def test_stop_sits_the_distance_behind_the_close_price() -> None:
    assert trailed_stop(Side.BUY, D("65000"), D("100"), None) == D("64900")
    assert trailed_stop(Side.SELL, D("65010"), D("100"), None) == D("65110")


def test_a_better_stop_loss_given_is_kept() -> None:
    assert trailed_stop(Side.BUY, D("65000"), D("100"), D("64950")) == D("64950")
    assert trailed_stop(Side.BUY, D("65000"), D("100"), D("64800")) == D("64900")
    assert trailed_stop(Side.SELL, D("65010"), D("100"), D("65050")) == D("65050")
    assert trailed_stop(Side.SELL, D("65010"), D("100"), D("65200")) == D("65110")


prices = st.lists(
    st.decimals(min_value=1, max_value=100_000, places=2, allow_nan=False), min_size=1
)


@given(prices)
def test_a_buy_stop_never_moves_down(path: list[Decimal]) -> None:
    stop: Decimal | None = None
    for price in path:
        moved = trailed_stop(Side.BUY, price, D("0.5"), stop)
        assert stop is None or moved >= stop
        stop = moved


@given(prices)
def test_a_sell_stop_never_moves_up(path: list[Decimal]) -> None:
    stop: Decimal | None = None
    for price in path:
        moved = trailed_stop(Side.SELL, price, D("0.5"), stop)
        assert stop is None or moved <= stop
        stop = moved


def test_next_step_is_one_tick_past_stop_plus_distance_in_the_favourable_direction() -> None:
    assert next_trail_step(Side.BUY, D("64900"), D("100"), D("0.01")) == (
        Book.BID_RISE,
        D("65000.01"),
    )
    assert next_trail_step(Side.SELL, D("65110"), D("100"), D("0.01")) == (
        Book.ASK_FALL,
        D("65009.99"),
    )
    # At that price the stop-loss moves by exactly one tick.
    _, level = next_trail_step(Side.BUY, D("64900"), D("100"), D("0.01"))
    assert trailed_stop(Side.BUY, level, D("100"), D("64900")) == D("64900.01")


@pytest.mark.parametrize(
    ("distance", "side", "reference"),
    [
        (D("0"), Side.BUY, D("65000")),
        (D("-1"), Side.SELL, D("65000")),
        (D("0.001"), Side.BUY, D("65000")),  # off the price grid
        (D("65000"), Side.BUY, D("65000")),  # would put a BUY's stop-loss at or below zero
    ],
)
def test_bad_distances_are_refused_naming_the_field(
    distance: Decimal, side: Side, reference: Decimal
) -> None:
    with pytest.raises(Refusal) as refused:
        check_trailing_stop(BTC, distance, side, reference)
    assert refused.value.field == "trailing_stop"


def test_no_distance_and_a_sell_distance_above_its_price_are_fine() -> None:
    check_trailing_stop(BTC, None, Side.BUY, D("65000"))
    check_trailing_stop(BTC, D("70000"), Side.SELL, D("65000"))  # a SELL's stop sits above
