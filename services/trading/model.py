"""The engine's domain objects: plain classes with __slots__ (millions of positions fit in memory),
Decimal for every amount, price and volume, enum values equal to the proto enum numbers.

Mutable objects (Account, Order, Position) belong to the engine; events carry `snapshot()` copies
so what was journaled never changes afterwards.
"""

from __future__ import annotations

import decimal
import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import ParamSpec, TypeVar

CENT = Decimal("0.01")
ZERO = Decimal(0)
HUNDRED = Decimal(100)

# Products like volume x contract size x price need more than the default 28 digits. Money is
# computed in this context, set around each entry point (`exact`), never by changing the
# thread's global context under other code's feet.
DECIMAL_CONTEXT = decimal.Context(prec=60)

P = ParamSpec("P")
R = TypeVar("R")


def exact(fn: Callable[P, R]) -> Callable[P, R]:
    """Runs `fn` in DECIMAL_CONTEXT. Nested calls (an entry point calling another) find it set
    and cost nothing; decimal.localcontext would copy the context on every call (~5 us, most
    of a tick's cost)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        outer = decimal.getcontext()
        if outer is DECIMAL_CONTEXT:
            return fn(*args, **kwargs)
        decimal.setcontext(DECIMAL_CONTEXT)
        try:
            return fn(*args, **kwargs)
        finally:
            decimal.setcontext(outer)

    return wrapper


class Side(enum.IntEnum):
    BUY = 1
    SELL = 2


class OrderType(enum.IntEnum):
    MARKET = 1
    LIMIT = 2
    STOP = 3


class OrderStatus(enum.IntEnum):
    PENDING = 1
    FILLED = 2
    CANCELLED = 3
    REJECTED = 4
    EXPIRED = 5


class CloseReason(enum.IntEnum):
    CLIENT = 1
    STOP_LOSS = 2
    TAKE_PROFIT = 3
    STOP_OUT = 4
    OPERATOR = 5


class LedgerKind(enum.IntEnum):
    DEPOSIT = 1
    REALIZED_PNL = 2
    NEGATIVE_BALANCE_RESET = 3
    WITHDRAWAL = 4
    COMMISSION = 5
    SWAP = 6


class AccountKind(enum.IntEnum):
    DEMO = 1
    REAL = 2


class EventType(enum.IntEnum):
    ACCOUNT_SNAPSHOT = 1
    ORDER_PLACED = 2
    ORDER_FILLED = 3
    ORDER_CANCELLED = 4
    ORDER_REJECTED = 5
    ORDER_EXPIRED = 6
    POSITION_OPENED = 7
    POSITION_MODIFIED = 8
    POSITION_CLOSED = 9
    BALANCE_CHANGED = 10
    LEVERAGE_CHANGED = 11
    MARGIN_CALL = 12
    STOP_OUT = 13
    ACCOUNT_CREATED = 14
    SWAP_CHARGED = 15
    TRAILING_STOP_MOVED = 16


def money(value: Decimal) -> Decimal:
    """The one rounding rule for money: cents, half up (half a cent away from zero), never a
    negative zero. Realised amounts settle in it, so the ledger sums exactly to the balance,
    and every amount shown is rounded by it, so what is shown is what would be realised."""
    cents = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return cents.copy_abs() if cents.is_zero() else cents


def pnl_of(side: Side, units: Decimal, open_price: Decimal, price: Decimal) -> Decimal:
    """The P&L, in money, of `units` of a position of `side` opened at `open_price` and closed
    at `price`: what closing realises and what a position shows at that price."""
    return money(units * (price - open_price) if side is Side.BUY else units * (open_price - price))


def margin_of(volume: Decimal, contract_size: Decimal, price: Decimal, leverage: int) -> Decimal:
    """Margin = volume x contract size x price / leverage, rounded UP to the cent (the broker
    never holds less than the formula asks)."""
    return (volume * contract_size * price / leverage).quantize(CENT, rounding=ROUND_CEILING)


def hedged_margin(
    long_units: Decimal, long_margin: Decimal, short_units: Decimal, short_margin: Decimal
) -> Decimal:
    """The margin one symbol's positions need together: only the larger side's unhedged part,
    at that side's average margin per unit, rounded UP to the cent; fully hedged: zero.

    As MT5-based brokers such as Exness apply it ("hedged margin" 0: positions of equal volume
    in opposite directions need no margin; the excess volume of the larger side is margined),
    see https://fusionmarkets.freshdesk.com/support/solutions/articles/51000385806 (MT5:
    "the margin requirement for perfectly hedged positions is zero") and Exness's FAQ as quoted
    at https://fofan.org/faq/why-i-cant-close-hedged-orders-positions-on-exness-mt4-and-mt5.
    """
    if long_units >= short_units:
        big_units, big_margin, small_units = long_units, long_margin, short_units
    else:
        big_units, big_margin, small_units = short_units, short_margin, long_units
    if not small_units:
        return big_margin
    if big_units == small_units:
        return ZERO
    excess = big_margin * (big_units - small_units) / big_units
    return excess.quantize(CENT, rounding=ROUND_CEILING)


@dataclass(slots=True)  # immutable by convention: frozen costs ~6x per construction
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    time: datetime


class Order:
    __slots__ = (
        "account_id",
        "client_order_id",
        "created_at",
        "expire_at",
        "fill_price",
        "fingerprint",
        "handle",
        "leverage",
        "order_id",
        "position_id",
        "price",
        "reject_reason",
        "side",
        "status",
        "stop_loss",
        "symbol",
        "take_profit",
        "trailing_stop",
        "type",
        "updated_at",
        "volume",
    )

    def __init__(
        self,
        order_id: int,
        account_id: int,
        symbol: str,
        side: Side,
        type: OrderType,
        volume: Decimal,
        leverage: int,
        created_at: datetime,
        *,
        client_order_id: str = "",
        fingerprint: str = "",
        price: Decimal | None = None,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        expire_at: datetime | None = None,
        status: OrderStatus = OrderStatus.PENDING,
        fill_price: Decimal | None = None,
        position_id: int | None = None,
        reject_reason: str = "",
        updated_at: datetime | None = None,
        trailing_stop: Decimal | None = None,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.symbol = symbol
        self.side = side
        self.type = type
        self.volume = volume
        self.leverage = leverage
        self.created_at = created_at
        self.updated_at = updated_at or created_at
        self.client_order_id = client_order_id
        self.fingerprint = fingerprint
        self.price = price
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.expire_at = expire_at
        self.status = status
        self.fill_price = fill_price
        self.position_id = position_id
        self.reject_reason = reject_reason
        self.trailing_stop = trailing_stop  # distance set on the position it opens
        self.handle = 0  # trigger-index handle while pending

    def snapshot(self) -> Order:
        return Order(
            self.order_id,
            self.account_id,
            self.symbol,
            self.side,
            self.type,
            self.volume,
            self.leverage,
            self.created_at,
            client_order_id=self.client_order_id,
            fingerprint=self.fingerprint,
            price=self.price,
            stop_loss=self.stop_loss,
            take_profit=self.take_profit,
            expire_at=self.expire_at,
            status=self.status,
            fill_price=self.fill_price,
            position_id=self.position_id,
            reject_reason=self.reject_reason,
            updated_at=self.updated_at,
            trailing_stop=self.trailing_stop,
        )


class Position:
    __slots__ = (
        "account_id",
        "closed_at",
        "commission",
        "leverage",
        "margin",
        "open_price",
        "opened_at",
        "order_id",
        "position_id",
        "side",
        "sl_handle",
        "stop_loss",
        "swap",
        "symbol",
        "take_profit",
        "tp_handle",
        "trail_handle",
        "trailing_stop",
        "units",
        "volume",
    )

    def __init__(
        self,
        position_id: int,
        account_id: int,
        order_id: int,
        symbol: str,
        side: Side,
        volume: Decimal,
        open_price: Decimal,
        leverage: int,
        margin: Decimal,
        units: Decimal,
        opened_at: datetime,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        closed_at: datetime | None = None,
        commission: Decimal = ZERO,
        trailing_stop: Decimal | None = None,
        swap: Decimal = ZERO,
    ) -> None:
        self.position_id = position_id
        self.account_id = account_id
        self.order_id = order_id
        self.symbol = symbol
        self.side = side
        self.volume = volume
        self.open_price = open_price
        self.leverage = leverage
        self.margin = margin
        self.units = units  # volume x contract size, cached for P&L
        self.opened_at = opened_at
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.closed_at = closed_at
        self.commission = commission  # charged so far on the open side (negative)
        # Distance (price units) the stop-loss trails the close price at; None: not trailing.
        self.trailing_stop = trailing_stop
        self.swap = swap  # swaps charged (< 0) or paid at rollovers so far
        self.sl_handle = 0  # trigger-index handles; 0 means not indexed
        self.tp_handle = 0
        self.trail_handle = 0

    def snapshot(self) -> Position:
        return Position(
            self.position_id,
            self.account_id,
            self.order_id,
            self.symbol,
            self.side,
            self.volume,
            self.open_price,
            self.leverage,
            self.margin,
            self.units,
            self.opened_at,
            self.stop_loss,
            self.take_profit,
            self.closed_at,
            self.commission,
            self.trailing_stop,
            self.swap,
        )

    def close_price(self, quote: Quote) -> Decimal:
        return quote.bid if self.side is Side.BUY else quote.ask

    def pnl_at(self, price: Decimal) -> Decimal:
        """Unrounded floating P&L if closed at `price`."""
        if self.side is Side.BUY:
            return self.units * (price - self.open_price)
        return self.units * (self.open_price - price)


@dataclass(slots=True)  # immutable by convention: frozen costs ~6x per construction
class Trade:
    trade_id: int
    account_id: int
    position_id: int
    symbol: str
    side: Side
    volume: Decimal
    open_price: Decimal
    close_price: Decimal
    realized_pnl: Decimal
    close_reason: CloseReason
    opened_at: datetime
    closed_at: datetime
    close_note: str = ""  # why the operators closed it (OPERATOR)
    commission: Decimal = ZERO  # open and close sides of this part (negative)
    swap: Decimal = ZERO  # swaps this part accumulated while open


@dataclass(slots=True)  # immutable by convention: frozen costs ~6x per construction
class LedgerEntry:
    entry_id: int
    account_id: int
    kind: LedgerKind
    amount: Decimal
    balance_after: Decimal
    reference_id: str
    created_at: datetime


class Exposure:
    """An account's open positions in one symbol, aggregated so equity is O(symbols):
    floating P&L = long_units x bid - long_cost + short_cost - short_units x ask; margin =
    hedged_margin of the two sides."""

    __slots__ = (
        "count",
        "long_cost",
        "long_margin",
        "long_units",
        "short_cost",
        "short_margin",
        "short_units",
    )

    def __init__(self) -> None:
        self.long_units = ZERO
        self.long_cost = ZERO
        self.long_margin = ZERO
        self.short_units = ZERO
        self.short_cost = ZERO
        self.short_margin = ZERO
        self.count = 0

    def add(self, position: Position, sign: int) -> None:
        units = position.units if sign > 0 else -position.units
        margin = position.margin if sign > 0 else -position.margin
        cost = units * position.open_price
        if position.side is Side.BUY:
            self.long_units += units
            self.long_cost += cost
            self.long_margin += margin
        else:
            self.short_units += units
            self.short_cost += cost
            self.short_margin += margin
        self.count += sign

    def margin(self) -> Decimal:
        return hedged_margin(self.long_units, self.long_margin, self.short_units, self.short_margin)

    def margin_with(self, side: Side, units: Decimal, margin: Decimal) -> Decimal:
        """The margin these positions would need with one more position of `side`."""
        if side is Side.BUY:
            return hedged_margin(
                self.long_units + units,
                self.long_margin + margin,
                self.short_units,
                self.short_margin,
            )
        return hedged_margin(
            self.long_units, self.long_margin, self.short_units + units, self.short_margin + margin
        )

    def pnl(self, quote: Quote) -> Decimal:
        return (
            self.long_units * quote.bid
            - self.long_cost
            + self.short_cost
            - self.short_units * quote.ask
        )


class Account:
    __slots__ = (
        "account_id",
        "account_type",
        "balance",
        "created_at",
        "exposure",
        "is_default",
        "kind",
        "leverage",
        "margin",
        "margin_call",
        "orders",
        "positions",
        "requests",
        "shard",
        "swap_free",
        "updated_at",
        "user_id",
        "watch",
    )

    def __init__(
        self,
        account_id: int,
        user_id: str,
        shard: int,
        leverage: int,
        balance: Decimal,
        created_at: datetime,
        margin_call: bool = False,
        updated_at: datetime | None = None,
        *,
        account_type: str = "standard",
        kind: AccountKind = AccountKind.DEMO,
        swap_free: bool = False,
        is_default: bool = True,
    ) -> None:
        self.account_id = account_id
        self.user_id = user_id
        self.account_type = account_type  # name of its AccountType
        self.kind = kind
        self.swap_free = swap_free  # no swaps at the rollover
        self.is_default = is_default  # what requests without an account_id act on
        self.shard = shard
        self.leverage = leverage
        self.balance = balance
        self.created_at = created_at
        self.updated_at = updated_at or created_at
        self.margin_call = margin_call  # in margin call until the level recovers
        self.margin = ZERO  # sum of its exposures' (hedged) margins
        self.positions: dict[int, Position] = {}
        self.orders: dict[int, Order] = {}  # pending only
        # client_order_id -> (order id, request fingerprint): idempotent retries
        self.requests: dict[str, tuple[int, str]] = {}
        self.exposure: dict[str, Exposure] = {}
        self.watch: list[int] = []  # trigger-index handles of the margin watch


@dataclass(slots=True)  # immutable by convention: frozen costs ~6x per construction
class AccountView:
    """An account's figures at one moment (the `account` of events and responses)."""

    account_id: int
    user_id: str
    shard: int
    balance: Decimal
    equity: Decimal
    margin: Decimal
    floating_pnl: Decimal
    leverage: int
    margin_call_level: Decimal
    stop_out_level: Decimal
    margin_call: bool
    created_at: datetime
    updated_at: datetime
    account_type: str = "standard"
    kind: AccountKind = AccountKind.DEMO
    swap_free: bool = False
    is_default: bool = True

    @property
    def free_margin(self) -> Decimal:
        return self.equity - self.margin

    @property
    def margin_level(self) -> Decimal | None:
        """Percent; None when no margin is used."""
        if self.margin == 0:
            return None
        return self.equity / self.margin * HUNDRED


@dataclass(slots=True)
class Event:
    """A journaled account event; `sequence` is strictly increasing across the shard. The
    account's figures that travel with it are those of the hand-over (Handoff.views)."""

    sequence: int
    type: EventType
    time: datetime
    order: Order | None = None
    position: Position | None = None
    trade: Trade | None = None
    ledger: LedgerEntry | None = None
    account_id: int = 0


@dataclass(frozen=True, slots=True)
class RolloverMark:
    """The shard's last rollover charged: committed with the charges, so none is charged
    twice."""

    shard: int
    last_rollover: datetime


@dataclass(frozen=True, slots=True)
class Handoff:
    """What the engine emitted since the last hand-over, given up to the committer: opened
    accounts (AccountView) and events in sequence order, and the figures of each account the
    events touch as they were at hand-over (the `account` its events are journaled with)."""

    items: tuple[Event | AccountView | RolloverMark, ...]
    views: Mapping[int, AccountView]
