"""Trailing stops: the distance a position's stop-loss follows the price at, checked, where the
stop-loss sits at a price, and the price at which it moves next. Pure functions.

A trailing stop only ever moves the stop-loss in the position's favour, and only by whole price
steps, so each move is one TRAILING_STOP_MOVED event and not one per tick.
"""

from __future__ import annotations

from decimal import Decimal

from kit.data.instruments import Instrument
from kit.refusal import invalid_field
from services.trading.model import Side
from services.trading.orders import check_tick
from services.trading.triggers import Book


def check_trailing_stop(
    inst: Instrument, distance: Decimal | None, side: Side, reference: Decimal
) -> None:
    """A trailing-stop distance: positive, on the price grid, and for a BUY less than the price
    it trails (`reference`, its close price), so the stop-loss it sets is a positive price."""
    if distance is None:
        return
    if distance <= 0:
        raise invalid_field("trailing_stop", "must be > 0", "INVALID_PRICE_LEVEL")
    check_tick(inst, "trailing_stop", distance)
    if side is Side.BUY and distance >= reference:
        raise invalid_field(
            "trailing_stop",
            f"must be less than the price it trails, {reference}",
            "INVALID_PRICE_LEVEL",
        )


def trailed_stop(
    side: Side, close_price: Decimal, distance: Decimal, stop_loss: Decimal | None
) -> Decimal:
    """The stop-loss a trailing stop gives at `close_price`: `distance` behind it, never worse
    for the position than `stop_loss` (a trailing stop only ever moves in its favour)."""
    if side is Side.BUY:
        level = close_price - distance
        return level if stop_loss is None else max(level, stop_loss)
    level = close_price + distance
    return level if stop_loss is None else min(level, stop_loss)


def next_trail_step(
    side: Side, stop_loss: Decimal, distance: Decimal, tick_size: Decimal
) -> tuple[Book, Decimal]:
    """(book, close price) at which the stop-loss moves next: one price step past stop-loss +
    distance, in the position's favour (the bid rising for a BUY, the ask falling for a SELL)."""
    step = tick_size + distance
    if side is Side.BUY:
        return Book.BID_RISE, stop_loss + step
    return Book.ASK_FALL, stop_loss - step
