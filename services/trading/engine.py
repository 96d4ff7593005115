"""The trading engine: every rule of docs/trading-rules.md, in memory, with no I/O.

One Engine owns the accounts of one shard. Commands and ticks are plain synchronous calls applied
in order (the caller runs them on one event loop); `now` is always passed in, ids and sequences
come from counters, so a run is deterministic and unit-testable. Every state change is emitted as
an Event into `outbox`; the persistence layer drains it and commits it (group commit) before the
command's caller is answered.

Bad input raises ServiceError with the field named; a refused command changes nothing.
"""

from __future__ import annotations

import decimal
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from itertools import count

from kit.data.instruments import Instrument
from kit.rpc.errors import (
    ServiceError,
    failed_precondition,
    invalid_field,
    not_found,
    unavailable,
)
from services.trading.model import (
    HUNDRED,
    ZERO,
    Account,
    AccountView,
    CloseReason,
    Event,
    EventType,
    Exposure,
    LedgerEntry,
    LedgerKind,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    Side,
    Trade,
    margin_of,
    money,
)
from services.trading.triggers import Book, Kind, TriggerIndex

DEFAULT_LEVERAGE = 100
MAX_LEVERAGE = 2000
MAX_DEPOSIT = Decimal(1_000_000)
# Ids carry the shard in their high bits, so shards never collide in a shared database.
SHARD_ID_SHIFT = 48
# Products like volume x contract size x price need more than the default 28 digits.
DECIMAL_PRECISION = 60


@dataclass(slots=True)  # immutable by convention: frozen costs ~6x per construction
class OrderRequest:
    symbol: str
    side: Side
    type: OrderType
    volume: Decimal | None = None
    margin: Decimal | None = None
    leverage: int = 0  # 0: the account's (capped by the instrument)
    price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    client_order_id: str = ""
    expire_at: datetime | None = None

    def fingerprint(self) -> str:
        """What a retry with the same client_order_id must repeat exactly."""

        def d(v: Decimal | None) -> str:
            return "" if v is None else format(v.normalize(), "f")

        expire = self.expire_at.isoformat() if self.expire_at else ""
        return "|".join(
            (
                self.symbol,
                str(int(self.side)),
                str(int(self.type)),
                d(self.volume),
                d(self.margin),
                str(self.leverage),
                d(self.price),
                d(self.stop_loss),
                d(self.take_profit),
                expire,
            )
        )


@dataclass(slots=True)  # immutable by convention: frozen costs ~6x per construction
class PlaceResult:
    order: Order  # a snapshot
    position: Position | None  # a snapshot of the position a market order opened
    # A retry: `order` carries only the first request's order id (the order may have moved
    # on since: filled, cancelled); the caller answers from what was committed.
    duplicate: bool = False


@dataclass(slots=True)  # immutable by convention: frozen costs ~6x per construction
class CloseResult:
    trade: Trade
    position: Position | None  # what stays open after a partial close


class Engine:
    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        *,
        shard_id: int = 0,
        default_leverage: int = DEFAULT_LEVERAGE,
        max_quote_age: timedelta = timedelta(seconds=10),
    ) -> None:
        ctx = decimal.getcontext()
        ctx.prec = max(ctx.prec, DECIMAL_PRECISION)
        self.instruments = dict(instruments)
        self.shard_id = shard_id
        self.default_leverage = default_leverage
        self.max_quote_age = max_quote_age
        self.quotes: dict[str, Quote] = {}
        self.accounts: dict[int, Account] = {}
        self.by_user: dict[str, Account] = {}
        self.positions: dict[int, Position] = {}
        self.pending: dict[int, Order] = {}
        self.index = TriggerIndex()
        self._expiries: list[tuple[datetime, int]] = []
        # Events (and newly opened accounts) not yet handed to persistence, in sequence order.
        self.outbox: list[Event | AccountView] = []
        self.last_sequence = 0
        base = shard_id << SHARD_ID_SHIFT
        self._account_ids = count(base + 1)
        self._order_ids = count(base + 1)
        self._position_ids = count(base + 1)
        self._trade_ids = count(base + 1)
        self._ledger_ids = count(base + 1)
        self._recheck: set[int] = set()
        # Accounts whose margin watch is out of date: commands only mark them, the next tick
        # re-arms them first (only ticks consume watches), so an open+close pair or a burst of
        # orders costs no index work. During a tick watches are re-armed at once.
        self._stale: dict[int, Account] = {}
        self._ticking = False
        self._default_levels = _max_levels(self.instruments.values())
        # Usually every group has the same levels: then no per-account lookup is needed.
        self._uniform_levels = (
            len({(i.margin_call_level, i.stop_out_level) for i in self.instruments.values()}) <= 1
        )

    # ---------------------------------------------------------------- restore (from the DB)

    def restore_counters(
        self, *, sequence: int, account: int, order: int, position: int, trade: int, ledger: int
    ) -> None:
        """Continues the id counters after the highest ids already stored (0 = none)."""
        base = self.shard_id << SHARD_ID_SHIFT
        self.last_sequence = sequence
        self._account_ids = count(max(account, base) + 1)
        self._order_ids = count(max(order, base) + 1)
        self._position_ids = count(max(position, base) + 1)
        self._trade_ids = count(max(trade, base) + 1)
        self._ledger_ids = count(max(ledger, base) + 1)

    def restore_account(self, account: Account) -> None:
        self.accounts[account.account_id] = account
        self.by_user[account.user_id] = account

    def restore_order(self, order: Order) -> None:
        account = self.accounts[order.account_id]
        if order.client_order_id:
            account.requests[order.client_order_id] = (order.order_id, order.fingerprint)
        if order.status is OrderStatus.PENDING:
            self._index_order(account, order)

    def restore_position(self, position: Position) -> None:
        account = self.accounts[position.account_id]
        self._add_position(account, position)

    # ---------------------------------------------------------------- reads

    def account_of(self, user_id: str, now: datetime) -> Account:
        """The user's account, opened (zero USD balance) on first use."""
        account = self.by_user.get(user_id)
        if account is None:
            account = Account(
                next(self._account_ids), user_id, self.shard_id, self.default_leverage, ZERO, now
            )
            self.accounts[account.account_id] = account
            self.by_user[user_id] = account
            self.outbox.append(self.view(account))
        return account

    def equity(self, account: Account) -> Decimal:
        equity = account.balance
        quotes = self.quotes
        for symbol, exposure in account.exposure.items():
            quote = quotes.get(symbol)
            if quote is not None:  # no quote yet after a restart: valued at its open price
                equity += exposure.pnl(quote)
        return equity

    def levels(self, account: Account) -> tuple[Decimal, Decimal]:
        """(margin call, stop-out) levels in percent: the strictest of the groups of the
        instruments the account holds, or of all groups when it holds none."""
        if self._uniform_levels or not account.exposure:
            return self._default_levels
        return _max_levels(self.instruments[s] for s in account.exposure)

    def view(self, account: Account) -> AccountView:
        equity = self.equity(account)
        mc, so = self.levels(account)
        return AccountView(
            account.account_id,
            account.user_id,
            account.shard,
            account.balance,
            equity,
            account.margin,
            equity - account.balance,
            account.leverage,
            mc,
            so,
            account.margin_call,
            account.created_at,
            account.updated_at,
        )

    def position_of(self, account: Account, position_id: int) -> Position:
        position = account.positions.get(position_id)
        if position is None:
            raise not_found(
                "POSITION_NOT_FOUND",
                "no such open position on your account",
                position_id=str(position_id),
            )
        return position

    def drain(self) -> list[Event | AccountView]:
        """Hands over what was emitted. Each event gets the account's figures as they are now,
        at commit time, computed once per account per batch."""
        out, self.outbox = self.outbox, []
        views: dict[int, AccountView] = {}
        for item in out:
            if isinstance(item, Event) and item.account is None:
                view = views.get(item.account_id)
                if view is None:
                    view = views[item.account_id] = self.view(self.accounts[item.account_id])
                item.account = view
        return out

    # ---------------------------------------------------------------- account commands

    def deposit(self, account: Account, amount: Decimal, now: datetime) -> LedgerEntry:
        if amount <= 0 or amount > MAX_DEPOSIT or amount != money(amount):
            raise invalid_field(
                "amount", "must be > 0, at most 1000000 and have at most 2 decimals"
            )
        entry = self._change_balance(account, LedgerKind.DEPOSIT, amount, "", now)
        self._check_risk(account, now)
        return entry

    def set_leverage(self, account: Account, leverage: int, now: datetime) -> None:
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise invalid_field(
                "leverage", f"must be between 1 and {MAX_LEVERAGE}", "INVALID_LEVERAGE"
            )
        account.leverage = leverage
        account.updated_at = now
        self._emit(account, EventType.LEVERAGE_CHANGED, now)

    # ---------------------------------------------------------------- orders

    def place_order(self, account: Account, req: OrderRequest, now: datetime) -> PlaceResult:
        fingerprint = req.fingerprint() if req.client_order_id else ""
        if req.client_order_id:
            seen = account.requests.get(req.client_order_id)
            if seen is not None:
                order_id, first = seen
                if first != fingerprint:
                    raise failed_precondition(
                        "IDEMPOTENCY_KEY_REUSED",
                        "client_order_id was already used with different order parameters",
                        client_order_id=req.client_order_id,
                    )
                # Only the id matters: the service answers a retry from what was committed.
                first_order = Order(
                    order_id,
                    account.account_id,
                    req.symbol,
                    req.side,
                    req.type,
                    ZERO,
                    0,
                    now,
                    client_order_id=req.client_order_id,
                )
                return PlaceResult(first_order, None, duplicate=True)

        inst = self.instruments.get(req.symbol)
        if inst is None:
            raise not_found(
                "UNKNOWN_SYMBOL", f"{req.symbol} is not a listed instrument", symbol=req.symbol
            )
        leverage = self._order_leverage(account, inst, req.leverage)
        quote = self.quotes.get(req.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {req.symbol} yet", symbol=req.symbol)
        if req.price is not None or req.stop_loss is not None or req.take_profit is not None:
            for name in ("price", "stop_loss", "take_profit"):
                _check_tick(inst, name, getattr(req, name))

        if req.type is OrderType.MARKET:
            if req.price is not None:
                raise invalid_field("price", "must be empty for MARKET orders")
            if req.expire_at is not None:
                raise invalid_field("expire_time", "only pending orders expire")
            self._check_fresh(quote, now)
            entry = quote.ask if req.side is Side.BUY else quote.bid
            exit_price = quote.bid if req.side is Side.BUY else quote.ask
            _check_levels(req.side, exit_price, req.stop_loss, req.take_profit, "the current price")
        else:
            if req.price is None:
                raise invalid_field("price", "required for LIMIT and STOP orders")
            if req.expire_at is not None and req.expire_at <= now:
                raise invalid_field("expire_time", "must be in the future")
            entry = req.price
            _check_pending_price(req.side, req.type, req.price, quote)
            _check_levels(req.side, entry, req.stop_loss, req.take_profit, "the order price")
        volume = self._order_volume(inst, req, leverage, entry)

        order = Order(
            next(self._order_ids),
            account.account_id,
            req.symbol,
            req.side,
            req.type,
            volume,
            leverage,
            now,
            client_order_id=req.client_order_id,
            fingerprint=fingerprint,
            price=req.price,
            stop_loss=req.stop_loss,
            take_profit=req.take_profit,
            expire_at=req.expire_at,
        )
        position: Position | None = None
        if req.type is OrderType.MARKET:
            position = self._fill(account, order, quote, now)  # raises on insufficient margin
            snapshot = order  # filled: it never changes again (the ORDER_FILLED event holds it)
        else:
            self._index_order(account, order)
            snapshot = order.snapshot()
            self._emit(account, EventType.ORDER_PLACED, now, order=snapshot)
        if req.client_order_id:
            account.requests[req.client_order_id] = (order.order_id, fingerprint)
        self._check_risk(account, now)
        return PlaceResult(snapshot, position)

    def cancel_order(self, account: Account, order_id: int, now: datetime) -> Order:
        order = account.orders.get(order_id)
        if order is None:
            raise not_found(
                "ORDER_NOT_FOUND", "no such pending order on your account", order_id=str(order_id)
            )
        self._end_order(account, order, OrderStatus.CANCELLED, now)
        self._emit(account, EventType.ORDER_CANCELLED, now, order=order.snapshot())
        return order.snapshot()

    def expire(self, now: datetime) -> None:
        """Expires pending orders whose expire time has passed."""
        while self._expiries and self._expiries[0][0] <= now:
            _, order_id = heapq.heappop(self._expiries)
            order = self.pending.get(order_id)
            if order is None:
                continue
            account = self.accounts[order.account_id]
            self._end_order(account, order, OrderStatus.EXPIRED, now)
            self._emit(account, EventType.ORDER_EXPIRED, now, order=order.snapshot())

    # ---------------------------------------------------------------- positions

    def modify_position(
        self,
        account: Account,
        position_id: int,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        now: datetime,
    ) -> Position:
        position = self.position_of(account, position_id)
        inst = self.instruments[position.symbol]
        _check_tick(inst, "stop_loss", stop_loss)
        _check_tick(inst, "take_profit", take_profit)
        quote = self.quotes.get(position.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {position.symbol} yet")
        _check_levels(
            position.side, position.close_price(quote), stop_loss, take_profit, "the current price"
        )
        self._unindex_levels(position)
        position.stop_loss = stop_loss
        position.take_profit = take_profit
        self._index_levels(position)
        self._emit(account, EventType.POSITION_MODIFIED, now, position=position.snapshot())
        return position.snapshot()

    def close_position(
        self, account: Account, position_id: int, volume: Decimal | None, now: datetime
    ) -> CloseResult:
        position = self.position_of(account, position_id)
        inst = self.instruments[position.symbol]
        if volume is not None:
            if volume > position.volume:
                raise invalid_field(
                    "volume", f"above the open volume {position.volume}", "INVALID_VOLUME"
                )
            if volume % inst.volume_step != 0:
                raise invalid_field(
                    "volume", f"must be a multiple of {inst.volume_step}", "INVALID_VOLUME"
                )
            rest = position.volume - volume
            if 0 < rest < inst.volume_min:
                raise invalid_field(
                    "volume",
                    f"would leave less than the minimum {inst.volume_min} open",
                    "INVALID_VOLUME",
                )
        quote = self.quotes.get(position.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {position.symbol} yet")
        self._check_fresh(quote, now)
        trade = self._close(
            account, position, volume or position.volume, quote, CloseReason.CLIENT, now
        )
        self._check_risk(account, now)
        rest_open = account.positions.get(position_id)
        return CloseResult(trade, rest_open.snapshot() if rest_open else None)

    # ---------------------------------------------------------------- ticks

    def on_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, time: datetime, now: datetime
    ) -> None:
        """Applies a quote: fills triggered pending orders, closes positions whose SL/TP it
        crosses (at this quote, not at the level), then margin calls and stop-outs. A quote
        for an unknown symbol, crossed, or older than the last is ignored."""
        if symbol not in self.instruments or bid <= 0 or ask < bid:
            return
        previous = self.quotes.get(symbol)
        if previous is not None and time < previous.time:
            return
        self.settle_watches()  # at the quotes the accounts were last checked at
        self._ticking = True
        try:
            self._on_quote(symbol, bid, ask, time, now, previous)
        finally:
            self._ticking = False

    def settle_watches(self) -> None:
        """Re-arms the margin watch of every account a command has changed since the last
        tick, exactly as if it had been re-armed by the command."""
        stale, self._stale = self._stale, {}
        for account in stale.values():
            mc, so = self.levels(account)
            self._rearm(account, self.equity(account), mc, so)

    def _on_quote(
        self,
        symbol: str,
        bid: Decimal,
        ask: Decimal,
        time: datetime,
        now: datetime,
        previous: Quote | None,
    ) -> None:
        quote = self.quotes[symbol] = Quote(symbol, bid, ask, time)
        recheck, self._recheck = self._recheck, set()
        if previous is None:  # first quote since start: accounts holding it get their watch
            recheck.update(a.account_id for a in self.accounts.values() if symbol in a.exposure)
        for account_id in sorted(recheck):
            self._check_risk(self.accounts[account_id], now)
        self.expire(now)
        checked: set[int] = set()
        while True:
            fired = self.index.pop_fired(symbol, bid, ask)
            if not fired:
                break
            for kind, handle, ref in fired:
                self._on_trigger(kind, handle, ref, quote, now, checked)

    def _on_trigger(
        self, kind: Kind, handle: int, ref: int, quote: Quote, now: datetime, checked: set[int]
    ) -> None:
        if kind is Kind.ORDER:
            order = self.pending.get(ref)
            if order is None or order.handle != handle:
                return
            account = self.accounts[order.account_id]
            order.handle = 0
            try:
                self._fill(account, order, quote, now)
            except ServiceError as exc:  # e.g. not enough free margin now: an event, not a drop
                self._end_order(account, order, OrderStatus.REJECTED, now, exc.reason)
                self._emit(account, EventType.ORDER_REJECTED, now, order=order.snapshot())
            self._check_risk(account, now)
        elif kind is Kind.WATCH:
            watched = self.accounts.get(ref)
            if watched is None or handle not in watched.watch:
                return
            account = watched
            account.watch.remove(handle)
            if account.account_id in checked:
                # Re-armed within a hair of its threshold: look again on the next tick rather
                # than loop on this one.
                self._recheck.add(account.account_id)
                return
            checked.add(account.account_id)
            self._check_risk(account, now)
        else:
            position = self.positions.get(ref)
            if position is None:
                return
            if kind is Kind.STOP_LOSS and position.sl_handle == handle:
                position.sl_handle = 0
                reason = CloseReason.STOP_LOSS
            elif kind is Kind.TAKE_PROFIT and position.tp_handle == handle:
                position.tp_handle = 0
                reason = CloseReason.TAKE_PROFIT
            else:
                return
            account = self.accounts[position.account_id]
            self._close(account, position, position.volume, quote, reason, now)
            self._check_risk(account, now)

    # ---------------------------------------------------------------- internals

    def _order_leverage(self, account: Account, inst: Instrument, requested: int) -> int:
        if requested == 0:
            return min(account.leverage, inst.max_leverage)
        if requested < 0 or requested > inst.max_leverage:
            raise invalid_field(
                "leverage",
                f"{inst.symbol} allows at most 1:{inst.max_leverage}",
                "INVALID_LEVERAGE",
            )
        if requested > account.leverage:
            raise invalid_field(
                "leverage", f"above the account leverage 1:{account.leverage}", "INVALID_LEVERAGE"
            )
        return requested

    def _order_volume(
        self, inst: Instrument, req: OrderRequest, leverage: int, price: Decimal
    ) -> Decimal:
        if req.volume is not None and req.margin is not None:
            raise invalid_field("margin", "give either volume, or margin and leverage, not both")
        if req.volume is not None:
            field, volume = "volume", req.volume
        elif req.margin is not None:
            field = "margin"
            raw = req.margin * leverage / (inst.contract_size * price)
            volume = (raw / inst.volume_step).to_integral_value(ROUND_FLOOR) * inst.volume_step
        else:
            raise invalid_field("volume", "required: give volume, or margin and leverage")
        if volume < inst.volume_min:
            raise invalid_field(
                field, f"gives less than the minimum volume {inst.volume_min}", "INVALID_VOLUME"
            )
        if volume > inst.volume_max:
            raise invalid_field(
                field, f"gives more than the maximum volume {inst.volume_max}", "INVALID_VOLUME"
            )
        if volume % inst.volume_step != 0:
            raise invalid_field(
                field, f"must be a multiple of {inst.volume_step}", "INVALID_VOLUME"
            )
        return volume

    def _check_fresh(self, quote: Quote, now: datetime) -> None:
        if now - quote.time > self.max_quote_age:
            raise failed_precondition(
                "STALE_QUOTE",
                f"the latest {quote.symbol} quote is older than "
                f"{self.max_quote_age.total_seconds():g}s",
                symbol=quote.symbol,
                quote_time=quote.time.isoformat(),
            )

    def _fill(self, account: Account, order: Order, quote: Quote, now: datetime) -> Position:
        """Opens the order's position at `quote`, if free margin covers it (including the
        spread the position starts with); raises INSUFFICIENT_MARGIN otherwise. Returns a
        snapshot of the new position."""
        inst = self.instruments[order.symbol]
        price = quote.ask if order.side is Side.BUY else quote.bid
        margin = margin_of(order.volume, inst.contract_size, price, order.leverage)
        units = order.volume * inst.contract_size
        spread_cost = units * (quote.ask - quote.bid)
        free_after = self.equity(account) - spread_cost - account.margin - margin
        if free_after < 0:
            raise failed_precondition(
                "INSUFFICIENT_MARGIN",
                "free margin does not cover the margin this order needs",
                required_margin=str(margin),
                free_margin=str(money(self.equity(account) - account.margin)),
            )
        if order.status is OrderStatus.PENDING and order.order_id in self.pending:
            self._end_order(account, order, OrderStatus.FILLED, now)
        else:
            order.status = OrderStatus.FILLED
            order.updated_at = now
        position = Position(
            next(self._position_ids),
            account.account_id,
            order.order_id,
            order.symbol,
            order.side,
            order.volume,
            price,
            order.leverage,
            margin,
            units,
            now,
            order.stop_loss,
            order.take_profit,
        )
        order.fill_price = price
        order.position_id = position.position_id
        self._add_position(account, position)
        opened = position.snapshot()
        # A filled order never changes again (it is in no book), so it is its own snapshot.
        self._emit(account, EventType.ORDER_FILLED, now, order=order)
        self._emit(account, EventType.POSITION_OPENED, now, position=opened)
        return opened

    def _add_position(self, account: Account, position: Position) -> None:
        self.positions[position.position_id] = position
        account.positions[position.position_id] = position
        account.margin += position.margin
        exposure = account.exposure.get(position.symbol)
        if exposure is None:
            exposure = account.exposure[position.symbol] = Exposure()
        exposure.add(position, 1)
        self._index_levels(position)

    def _close(
        self,
        account: Account,
        position: Position,
        volume: Decimal,
        quote: Quote,
        reason: CloseReason,
        now: datetime,
    ) -> Trade:
        price = position.close_price(quote)
        inst = self.instruments[position.symbol]
        units = volume * inst.contract_size
        pnl = money(
            units * (price - position.open_price)
            if position.side is Side.BUY
            else units * (position.open_price - price)
        )
        trade = Trade(
            next(self._trade_ids),
            account.account_id,
            position.position_id,
            position.symbol,
            position.side,
            volume,
            position.open_price,
            price,
            pnl,
            reason,
            position.opened_at,
            now,
        )
        exposure = account.exposure[position.symbol]
        exposure.add(position, -1)
        account.margin -= position.margin
        if volume == position.volume:
            self._unindex_levels(position)
            del self.positions[position.position_id]
            del account.positions[position.position_id]
            position.closed_at = now
            if exposure.count == 0:
                del account.exposure[position.symbol]
            snapshot = position  # closed: the engine lets go of it, so it never changes again
        else:
            position.volume -= volume
            position.units = position.volume * inst.contract_size
            position.margin = margin_of(
                position.volume, inst.contract_size, position.open_price, position.leverage
            )
            account.margin += position.margin
            exposure.add(position, 1)
            snapshot = position.snapshot()
        kind = EventType.STOP_OUT if reason is CloseReason.STOP_OUT else EventType.POSITION_CLOSED
        self._emit(account, kind, now, position=snapshot, trade=trade)
        if pnl != 0:
            self._change_balance(account, LedgerKind.REALIZED_PNL, pnl, str(trade.trade_id), now)
        return trade

    def _change_balance(
        self, account: Account, kind: LedgerKind, amount: Decimal, reference: str, now: datetime
    ) -> LedgerEntry:
        account.balance += amount
        account.updated_at = now
        entry = LedgerEntry(
            next(self._ledger_ids),
            account.account_id,
            kind,
            amount,
            account.balance,
            reference,
            now,
        )
        self._emit(account, EventType.BALANCE_CHANGED, now, ledger=entry)
        return entry

    def _check_risk(self, account: Account, now: datetime) -> None:
        """Margin call and stop-out for one account, then re-arms its margin watch."""
        if account.margin:
            mc, so = self.levels(account)
            equity = self.equity(account)
            if equity * HUNDRED <= account.margin * so:
                self._stop_out(account, so, now)
                mc, so = self.levels(account)
                equity = self.equity(account)
        if account.margin == 0:  # no position left (or none to begin with)
            account.margin_call = False
            self._disarm(account)
            if account.balance < 0 and not account.positions:
                # Negative balance protection, after a stop-out or a close at a gap (e.g. a
                # stop-loss filled past zero equity).
                self._change_balance(
                    account, LedgerKind.NEGATIVE_BALANCE_RESET, -account.balance, "", now
                )
            return
        if equity * HUNDRED <= account.margin * mc:
            if not account.margin_call:
                account.margin_call = True
                self._emit(account, EventType.MARGIN_CALL, now)
        else:
            account.margin_call = False
        if self._ticking:
            self._rearm(account, equity, mc, so)
        else:
            self._stale[account.account_id] = account

    def _stop_out(self, account: Account, so: Decimal, now: datetime) -> None:
        """Closes the least profitable position, again and again, until the margin level is
        above the stop-out level (negative balance protection follows in _check_risk)."""
        while account.positions:
            if self.equity(account) * HUNDRED > account.margin * so:
                break
            candidates = [
                (p.pnl_at(p.close_price(self.quotes[p.symbol])), p.position_id, p)
                for p in account.positions.values()
                if p.symbol in self.quotes
            ]
            if not candidates:
                break
            _, _, worst = min(candidates, key=lambda c: (c[0], c[1]))
            self._close(
                account, worst, worst.volume, self.quotes[worst.symbol], CloseReason.STOP_OUT, now
            )

    def _disarm(self, account: Account) -> None:
        self._stale.pop(account.account_id, None)
        if account.watch:
            remove = self.index.remove
            for handle in account.watch:
                remove(handle)
            account.watch = []

    def _rearm(self, account: Account, equity: Decimal, mc: Decimal, so: Decimal) -> None:
        """Indexes the prices at which this account must be looked at again.

        The headroom (equity minus the equity at the next threshold) is split evenly over the
        account's exposures (each symbol's long and short side). A long side can only lose its
        share when the bid falls by share / units, a short side when the ask rises by
        share / units; until one of those prices is crossed the account cannot have reached the
        threshold, so ticks elsewhere never touch it. In margin call, a second set of watches
        in the other direction notices the recovery.
        `equity`, `mc` and `so` are the account's figures now (see _check_risk).
        """
        self._disarm(account)
        if account.margin == 0:
            return
        sides: list[tuple[str, Quote, Decimal, bool]] = []
        for symbol, exposure in account.exposure.items():
            quote = self.quotes.get(symbol)
            if quote is None:
                continue
            if exposure.long_units:
                sides.append((symbol, quote, exposure.long_units, True))
            if exposure.short_units:
                sides.append((symbol, quote, exposure.short_units, False))
        if not sides:
            return
        floor = so if account.margin_call else mc
        share = (equity - account.margin * floor / HUNDRED) / len(sides)
        add = self.index.add
        watch = account.watch
        ref = account.account_id
        for symbol, quote, units, is_long in sides:
            step = share / units
            if is_long:
                watch.append(add(symbol, Book.BID_FALL, quote.bid - step, Kind.WATCH, ref))
            else:
                watch.append(add(symbol, Book.ASK_RISE, quote.ask + step, Kind.WATCH, ref))
        if account.margin_call:
            gain = (account.margin * mc / HUNDRED - equity) / len(sides)
            for symbol, quote, units, is_long in sides:
                step = gain / units
                if is_long:
                    watch.append(add(symbol, Book.BID_RISE, quote.bid + step, Kind.WATCH, ref))
                else:
                    watch.append(add(symbol, Book.ASK_FALL, quote.ask - step, Kind.WATCH, ref))

    def _index_order(self, account: Account, order: Order) -> None:
        assert order.price is not None
        if order.type is OrderType.LIMIT:
            book = Book.ASK_FALL if order.side is Side.BUY else Book.BID_RISE
        else:
            book = Book.ASK_RISE if order.side is Side.BUY else Book.BID_FALL
        order.handle = self.index.add(order.symbol, book, order.price, Kind.ORDER, order.order_id)
        self.pending[order.order_id] = order
        account.orders[order.order_id] = order
        if order.expire_at is not None:
            heapq.heappush(self._expiries, (order.expire_at, order.order_id))

    def _end_order(
        self, account: Account, order: Order, status: OrderStatus, now: datetime, reason: str = ""
    ) -> None:
        if order.handle:
            self.index.remove(order.handle)
            order.handle = 0
        self.pending.pop(order.order_id, None)
        account.orders.pop(order.order_id, None)
        order.status = status
        order.reject_reason = reason
        order.updated_at = now

    def _index_levels(self, position: Position) -> None:
        buy = position.side is Side.BUY
        if position.stop_loss is not None:
            position.sl_handle = self.index.add(
                position.symbol,
                Book.BID_FALL if buy else Book.ASK_RISE,
                position.stop_loss,
                Kind.STOP_LOSS,
                position.position_id,
            )
        if position.take_profit is not None:
            position.tp_handle = self.index.add(
                position.symbol,
                Book.BID_RISE if buy else Book.ASK_FALL,
                position.take_profit,
                Kind.TAKE_PROFIT,
                position.position_id,
            )

    def _unindex_levels(self, position: Position) -> None:
        if position.sl_handle:
            self.index.remove(position.sl_handle)
            position.sl_handle = 0
        if position.tp_handle:
            self.index.remove(position.tp_handle)
            position.tp_handle = 0

    def _emit(
        self,
        account: Account,
        type: EventType,
        now: datetime,
        *,
        order: Order | None = None,
        position: Position | None = None,
        trade: Trade | None = None,
        ledger: LedgerEntry | None = None,
    ) -> Event:
        self.last_sequence += 1
        event = Event(
            self.last_sequence, type, None, now, order, position, trade, ledger, account.account_id
        )
        self.outbox.append(event)
        return event


def _max_levels(instruments: Iterable[Instrument]) -> tuple[Decimal, Decimal]:
    mc, so = Decimal(60), ZERO
    first = True
    for inst in instruments:
        if first:
            mc, so, first = inst.margin_call_level, inst.stop_out_level, False
        else:
            mc, so = max(mc, inst.margin_call_level), max(so, inst.stop_out_level)
    return mc, so


def _check_tick(inst: Instrument, field: str, value: Decimal | None) -> None:
    if value is None:
        return
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > inst.price_decimals and value != round(value, inst.price_decimals):
        raise invalid_field(
            field,
            f"{inst.symbol} prices have at most {inst.price_decimals} decimals",
            "INVALID_PRICE_LEVEL",
        )


def _check_pending_price(side: Side, type: OrderType, price: Decimal, quote: Quote) -> None:
    if type is OrderType.LIMIT:
        if side is Side.BUY and price >= quote.ask:
            raise invalid_field(
                "price", f"a BUY LIMIT must be below the ask {quote.ask}", "INVALID_PRICE_LEVEL"
            )
        if side is Side.SELL and price <= quote.bid:
            raise invalid_field(
                "price", f"a SELL LIMIT must be above the bid {quote.bid}", "INVALID_PRICE_LEVEL"
            )
    else:
        if side is Side.BUY and price <= quote.ask:
            raise invalid_field(
                "price", f"a BUY STOP must be above the ask {quote.ask}", "INVALID_PRICE_LEVEL"
            )
        if side is Side.SELL and price >= quote.bid:
            raise invalid_field(
                "price", f"a SELL STOP must be below the bid {quote.bid}", "INVALID_PRICE_LEVEL"
            )


def _check_levels(
    side: Side,
    reference: Decimal,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    what: str,
) -> None:
    """A BUY's SL below and TP above `reference`; a SELL's the other way round."""
    if side is Side.BUY:
        if stop_loss is not None and stop_loss >= reference:
            raise invalid_field(
                "stop_loss",
                f"a BUY stop-loss must be below {what} {reference}",
                "INVALID_PRICE_LEVEL",
            )
        if take_profit is not None and take_profit <= reference:
            raise invalid_field(
                "take_profit",
                f"a BUY take-profit must be above {what} {reference}",
                "INVALID_PRICE_LEVEL",
            )
    else:
        if stop_loss is not None and stop_loss <= reference:
            raise invalid_field(
                "stop_loss",
                f"a SELL stop-loss must be above {what} {reference}",
                "INVALID_PRICE_LEVEL",
            )
        if take_profit is not None and take_profit >= reference:
            raise invalid_field(
                "take_profit",
                f"a SELL take-profit must be below {what} {reference}",
                "INVALID_PRICE_LEVEL",
            )
