"""Arming a pending order's and a position's price triggers in the trigger index, and disarming
them: which book each goes in (trigger_books), at which level of the published quote (the
account type's prices translated by pricing). The handles are kept on the order or position,
so a trigger that fires can be told from one replaced since.
"""

from __future__ import annotations

from decimal import Decimal

from services.trading.model import Order, Position
from services.trading.pricing import TypePricing
from services.trading.trailing import next_trail_step
from services.trading.trigger_books import pending_book, stop_loss_book, take_profit_book
from services.trading.triggers import Kind, TriggerIndex


def arm_order(index: TriggerIndex, pricing: TypePricing, account_type: str, order: Order) -> int:
    """Indexes the pending order's trigger price; returns its handle."""
    assert order.price is not None
    book = pending_book(order.side, order.type)
    price = pricing.book_price(account_type, order.symbol, book, order.price)
    return index.add(order.symbol, book, price, Kind.ORDER, order.order_id)


def arm_position(
    index: TriggerIndex,
    pricing: TypePricing,
    account_type: str,
    position: Position,
    tick_size: Decimal,
) -> None:
    """Indexes the position's stop-loss, take-profit and trailing stop's next step (each set)."""
    symbol = position.symbol
    price_of = pricing.book_price
    if position.stop_loss is not None:
        book = stop_loss_book(position.side)
        position.sl_handle = index.add(
            symbol,
            book,
            price_of(account_type, symbol, book, position.stop_loss),
            Kind.STOP_LOSS,
            position.position_id,
        )
    if position.take_profit is not None:
        book = take_profit_book(position.side)
        position.tp_handle = index.add(
            symbol,
            book,
            price_of(account_type, symbol, book, position.take_profit),
            Kind.TAKE_PROFIT,
            position.position_id,
        )
    if position.trailing_stop is not None and position.stop_loss is not None:
        book, level = next_trail_step(
            position.side, position.stop_loss, position.trailing_stop, tick_size
        )
        position.trail_handle = index.add(
            symbol,
            book,
            price_of(account_type, symbol, book, level),
            Kind.TRAIL,
            position.position_id,
        )


def disarm_position(index: TriggerIndex, position: Position) -> None:
    """Removes every trigger of the position from the index."""
    if position.sl_handle:
        index.remove(position.sl_handle)
        position.sl_handle = 0
    if position.tp_handle:
        index.remove(position.tp_handle)
        position.tp_handle = 0
    if position.trail_handle:
        index.remove(position.trail_handle)
        position.trail_handle = 0
