"""Which book of the trigger index a pending order's or a position's level goes in: the side of
the quote it is judged on and the direction that crosses it (docs/trading-rules.md). Pure.

BUY LIMIT fills when the ask falls to its price, BUY STOP when the ask rises to it; SELL LIMIT
when the bid rises to it, SELL STOP when the bid falls to it. A BUY position closes at the bid:
its stop-loss fires on the bid falling, its take-profit on the bid rising; a SELL position
closes at the ask, the other way round.
"""

from __future__ import annotations

from services.trading.model import OrderType, Side
from services.trading.triggers import Book


def pending_book(side: Side, type: OrderType) -> Book:
    if type is OrderType.LIMIT:
        return Book.ASK_FALL if side is Side.BUY else Book.BID_RISE
    return Book.ASK_RISE if side is Side.BUY else Book.BID_FALL


def stop_loss_book(side: Side) -> Book:
    return Book.BID_FALL if side is Side.BUY else Book.ASK_RISE


def take_profit_book(side: Side) -> Book:
    return Book.BID_RISE if side is Side.BUY else Book.ASK_FALL
