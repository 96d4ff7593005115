"""Which book each trigger level goes in (services/trading/trigger_books.py), judged through a
real TriggerIndex: a level fires on the quote side and in the direction docs/trading-rules.md
gives, and not on the other side of the quote."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.trading.model import OrderType, Side
from services.trading.trigger_books import pending_book, stop_loss_book, take_profit_book
from services.trading.triggers import Book, Kind, TriggerIndex

D = Decimal
LEVEL = D(100)


def fires(book: Book, bid: str, ask: str) -> bool:
    index = TriggerIndex()
    index.add("X", book, LEVEL, Kind.ORDER, 1)
    return bool(index.pop_fired("X", D(bid), D(ask)))


@pytest.mark.parametrize(
    ("side", "type", "fired_by", "not_fired_by"),
    [
        # BUY LIMIT: ask <= price; the bid falling there alone (ask still above) fires nothing.
        (Side.BUY, OrderType.LIMIT, ("99", "100"), ("100", "101")),
        # SELL LIMIT: bid >= price.
        (Side.SELL, OrderType.LIMIT, ("100", "101"), ("99", "100")),
        # BUY STOP: ask >= price.
        (Side.BUY, OrderType.STOP, ("99", "100"), ("98", "99.9")),
        # SELL STOP: bid <= price.
        (Side.SELL, OrderType.STOP, ("100", "101"), ("100.1", "101")),
    ],
)
def test_pending_orders_fire_on_their_side_of_the_quote(
    side: Side, type: OrderType, fired_by: tuple[str, str], not_fired_by: tuple[str, str]
) -> None:
    book = pending_book(side, type)
    assert fires(book, *fired_by)
    assert not fires(book, *not_fired_by)


def test_a_buy_positions_levels_are_judged_on_the_bid() -> None:
    # Closes at the bid: stop-loss when it falls to the level, take-profit when it rises to it.
    assert stop_loss_book(Side.BUY) is Book.BID_FALL
    assert take_profit_book(Side.BUY) is Book.BID_RISE
    assert fires(stop_loss_book(Side.BUY), "100", "101")
    assert not fires(stop_loss_book(Side.BUY), "100.01", "100.5")
    assert fires(take_profit_book(Side.BUY), "100", "101")
    assert not fires(take_profit_book(Side.BUY), "99", "100")  # the ask reaching it is not enough


def test_a_sell_positions_levels_are_judged_on_the_ask() -> None:
    assert stop_loss_book(Side.SELL) is Book.ASK_RISE
    assert take_profit_book(Side.SELL) is Book.ASK_FALL
    assert fires(stop_loss_book(Side.SELL), "99", "100")
    assert not fires(stop_loss_book(Side.SELL), "99.5", "99.99")
    assert fires(take_profit_book(Side.SELL), "99", "100")
    assert not fires(take_profit_book(Side.SELL), "100", "101")  # the bid reaching it is not enough
