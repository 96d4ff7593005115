"""Domain objects -> exness.trading.v1 messages (decimal strings, Timestamps)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from exness.trading.v1 import trading_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from kit.data.account_types import AccountType
from kit.data.instruments import Instrument
from kit.decimals import format_decimal
from services.trading.model import (
    AccountView,
    Event,
    LedgerEntry,
    Order,
    Position,
    Quote,
    Trade,
    exact,
    money,
    pnl_of,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def dec(value: Decimal | None, places: int | None = None) -> str:
    """format_decimal, with "" for an absent value."""
    return "" if value is None else format_decimal(value, places)


def cents(value: Decimal) -> str:
    """A money amount as shown: rounded by the engine's one rule for money (model.money)."""
    return format_decimal(money(value), 2)


_last_stamp: tuple[datetime, Timestamp] = (_EPOCH, Timestamp())


def ts(value: datetime) -> Timestamp:
    """The Timestamp of `value`. The one of the last value is reused (the fields of a command's
    events all carry the same time): use it as a field value or CopyFrom source, never modify
    it."""
    global _last_stamp
    last, stamp = _last_stamp
    if value == last and value.tzinfo is not None:
        return stamp
    if value.tzinfo is None:  # as Timestamp.FromDatetime: naive means UTC
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    stamp = Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)
    _last_stamp = (value, stamp)
    return stamp


@exact
def account_pb(view: AccountView) -> pb.Account:
    level = view.margin_level
    return pb.Account(
        account_id=str(view.account_id),
        currency="USD",
        balance=cents(view.balance),
        equity=cents(view.equity),
        margin=cents(view.margin),
        free_margin=cents(view.free_margin),
        margin_level="" if level is None else dec(level, 2),
        leverage=view.leverage,
        floating_pnl=cents(view.floating_pnl),
        shard=view.shard,
        margin_call_level=dec(view.margin_call_level),
        stop_out_level=dec(view.stop_out_level),
        account_type=view.account_type,
        kind=int(view.kind),  # type: ignore[arg-type]
        swap_free=view.swap_free,
        is_default=view.is_default,
        create_time=ts(view.created_at),
    )


# Messages of orders that can no longer change (snapshots and filled orders), by id(order): the
# PlaceOrder answer and the journal event of a fill format the same order. The entry holds the
# order itself, so its id cannot be reused while the entry lives.
_FINAL_ORDERS: dict[int, tuple[Order, pb.Order]] = {}
_FINAL_ORDERS_MAX = 4096


def final_order_pb(order: Order) -> pb.Order:
    """order_pb for an order object that never changes again; the message is shared (use it as
    a field value or CopyFrom source, never modify it)."""
    hit = _FINAL_ORDERS.get(id(order))
    if hit is not None and hit[0] is order:
        return hit[1]
    message = order_pb(order)
    if len(_FINAL_ORDERS) >= _FINAL_ORDERS_MAX:
        _FINAL_ORDERS.pop(next(iter(_FINAL_ORDERS)))
    _FINAL_ORDERS[id(order)] = (order, message)
    return message


def order_pb(order: Order) -> pb.Order:
    message = pb.Order(
        order_id=str(order.order_id),
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=int(order.side),  # type: ignore[arg-type]
        type=int(order.type),  # type: ignore[arg-type]
        status=int(order.status),  # type: ignore[arg-type]
        volume=dec(order.volume),
        price=dec(order.price),
        stop_loss=dec(order.stop_loss),
        take_profit=dec(order.take_profit),
        trailing_stop=dec(order.trailing_stop),
        leverage=order.leverage,
        fill_price=dec(order.fill_price),
        position_id="" if order.position_id is None else str(order.position_id),
        reject_reason=order.reject_reason,
        create_time=ts(order.created_at),
        update_time=ts(order.updated_at),
        account_id=str(order.account_id),
    )
    if order.expire_at is not None:
        message.expire_time.CopyFrom(ts(order.expire_at))
    return message


@exact
def position_pb(position: Position, quote: Quote | None) -> pb.Position:
    current = position.close_price(quote) if quote is not None else None
    # Exactly what closing at this quote would realise (the engine's own function).
    pnl = (
        None
        if current is None
        else pnl_of(position.side, position.units, position.open_price, current)
    )
    return pb.Position(
        position_id=str(position.position_id),
        symbol=position.symbol,
        side=int(position.side),  # type: ignore[arg-type]
        volume=dec(position.volume),
        open_price=dec(position.open_price),
        current_price=dec(current),
        stop_loss=dec(position.stop_loss),
        take_profit=dec(position.take_profit),
        trailing_stop=dec(position.trailing_stop),
        leverage=position.leverage,
        margin=cents(position.margin),
        unrealized_pnl="" if pnl is None else cents(pnl),
        order_id=str(position.order_id),
        open_time=ts(position.opened_at),
        commission=cents(position.commission),
        swap=cents(position.swap),
        account_id=str(position.account_id),
    )


def trade_pb(trade: Trade) -> pb.Trade:
    return pb.Trade(
        trade_id=str(trade.trade_id),
        position_id=str(trade.position_id),
        symbol=trade.symbol,
        side=int(trade.side),  # type: ignore[arg-type]
        volume=dec(trade.volume),
        open_price=dec(trade.open_price),
        close_price=dec(trade.close_price),
        realized_pnl=cents(trade.realized_pnl),
        close_reason=int(trade.close_reason),  # type: ignore[arg-type]
        open_time=ts(trade.opened_at),
        close_time=ts(trade.closed_at),
        close_note=trade.close_note,
        commission=cents(trade.commission),
        swap=cents(trade.swap),
        account_id=str(trade.account_id),
    )


def ledger_pb(entry: LedgerEntry) -> pb.LedgerEntry:
    return pb.LedgerEntry(
        entry_id=str(entry.entry_id),
        kind=int(entry.kind),  # type: ignore[arg-type]
        amount=cents(entry.amount),
        balance_after=cents(entry.balance_after),
        reference_id=entry.reference_id,
        create_time=ts(entry.created_at),
        account_id=str(entry.account_id),
    )


def event_pb(
    event: Event,
    view: AccountView,
    quote_of: Callable[[str, str], Quote | None],
    accounts: dict[int, pb.Account],
) -> pb.AccountEvent:
    """The event as journaled, with `view`, its account's figures. `accounts`: a cache of
    Account messages by id(view); the events of one account in one hand-over share their view,
    so its figures are formatted once."""
    account = accounts.get(id(view))
    if account is None:
        account = accounts[id(view)] = account_pb(view)
    message = pb.AccountEvent(
        sequence=event.sequence,
        account_id=str(view.account_id),
        user_id=view.user_id,
        type=int(event.type),  # type: ignore[arg-type]
        time=ts(event.time),
        account=account,
    )
    if event.order is not None:  # events carry orders that never change (snapshots or fills)
        message.order.CopyFrom(final_order_pb(event.order))
    # A closed position travels as the trade only; `position` is what stays open.
    if event.position is not None and event.position.closed_at is None:
        message.position.CopyFrom(
            position_pb(event.position, quote_of(event.position.symbol, view.account_type))
        )
    if event.trade is not None:
        message.trade.CopyFrom(trade_pb(event.trade))
    if event.ledger is not None:
        message.ledger_entry.CopyFrom(ledger_pb(event.ledger))
    return message


def account_type_pb(
    account_type: AccountType, instruments: Mapping[str, Instrument]
) -> pb.AccountType:
    """The type with its terms on every listed instrument, ordered by symbol."""
    return pb.AccountType(
        name=account_type.name,
        display_name=account_type.display_name,
        margin_call_level=dec(account_type.margin_call_level),
        stop_out_level=dec(account_type.stop_out_level),
        max_leverage=account_type.max_leverage,
        terms=[
            pb.AccountTypeTerms(
                symbol=symbol,
                spread_markup=dec(account_type.markup(inst)),
                commission_per_lot=dec(account_type.terms_of(symbol).commission_per_lot, 2),
            )
            for symbol, inst in sorted(instruments.items())
        ],
    )
