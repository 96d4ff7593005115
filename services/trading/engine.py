"""The trading engine: every rule of docs/trading-rules.md (accounts, orders, positions, SL/TP,
margin call and stop-out), in memory, with no I/O.

One Engine owns the accounts of one shard. Commands and ticks are plain synchronous calls applied
in order (the caller runs them on one event loop); `now` is always passed in, ids and sequences
come from counters, so a run is deterministic and unit-testable. Every state change is emitted as
an Event; the persistence layer takes them with `hand_over()` and commits them (group commit)
before the command's caller is answered. Readers use the query methods, never the dictionaries.

Order checks live in orders.py, the pure risk rules in risk.py. A refused command raises
Refusal (kit.refusal) and changes nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from kit.data.instruments import Instrument
from kit.refusal import Refusal, not_found, precondition_failed, unavailable
from services.trading.ids import ShardIds
from services.trading.model import (
    HUNDRED,
    ZERO,
    Account,
    AccountView,
    CloseReason,
    Event,
    EventType,
    Exposure,
    Handoff,
    LedgerEntry,
    LedgerKind,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    Side,
    Trade,
    exact,
    margin_of,
    money,
    pnl_of,
)
from services.trading.orders import (
    OrderRequest,
    check_account_leverage,
    check_close_volume,
    check_deposit,
    check_fresh,
    check_levels,
    check_tick,
    entry_price,
    order_leverage,
    order_volume,
)
from services.trading.risk import next_to_stop_out, strictest_levels, watch_levels
from services.trading.triggers import Book, Kind, TriggerIndex

__all__ = ["CloseResult", "Engine", "OrderRequest", "PlaceResult"]

DEFAULT_LEVERAGE = 100
# Pending orders per account (MT5 servers have the same kind of limit): each is indexed and
# listed, so an account must not be able to grow them without bound.
DEFAULT_MAX_PENDING_ORDERS = 200


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
        max_pending_orders: int = DEFAULT_MAX_PENDING_ORDERS,
    ) -> None:
        self.instruments = dict(instruments)
        self.max_pending_orders = max_pending_orders
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
        # Events (and newly opened accounts) not yet handed over, in sequence order.
        self._outbox: list[Event | AccountView] = []
        self._sequence = 0
        self.restore_counters(sequence=0, account=0, order=0, position=0, trade=0, ledger=0)
        self._recheck: set[int] = set()
        # Instruments the operators halted (symbol -> why): new orders on them are refused.
        self.halted: dict[str, str] = {}
        # Accounts whose margin watch is out of date: commands only mark them, the next tick
        # re-arms them first (only ticks consume watches), so an open+close pair or a burst of
        # orders costs no index work. During a tick watches are re-armed at once.
        self._stale: dict[int, Account] = {}
        self._ticking = False
        self._default_levels = strictest_levels(self.instruments.values())
        # Usually every group has the same levels: then no per-account lookup is needed.
        self._uniform_levels = (
            len({(i.margin_call_level, i.stop_out_level) for i in self.instruments.values()}) <= 1
        )

    # ---------------------------------------------------------------- restore (from the DB)

    def restore_counters(
        self, *, sequence: int, account: int, order: int, position: int, trade: int, ledger: int
    ) -> None:
        """Continues the id counters after the highest ids already stored (0 = none)."""
        shard = self.shard_id
        self._sequence = sequence
        self._account_ids = ShardIds(shard, account)
        self._order_ids = ShardIds(shard, order)
        self._position_ids = ShardIds(shard, position)
        self._trade_ids = ShardIds(shard, trade)
        self._ledger_ids = ShardIds(shard, ledger)

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

    def adopt(self, rebuilt: Engine) -> None:
        """Takes over the state of `rebuilt` (loaded from the database after a failed commit)
        in place, so every holder of this engine sees it. The quotes seen meanwhile stay; every
        account holding a quoted symbol is checked again on the next tick."""
        quotes = self.quotes
        vars(self).update(vars(rebuilt))
        self.quotes = quotes
        self._recheck = {
            a.account_id for a in self.accounts.values() if any(s in quotes for s in a.exposure)
        }

    # ---------------------------------------------------------------- queries (read-only)

    @property
    def last_sequence(self) -> int:
        """The sequence of the last event emitted."""
        return self._sequence

    def quote(self, symbol: str) -> Quote | None:
        return self.quotes.get(symbol)

    def pending_orders(
        self, account: Account, *, before_id: int | None = None, limit: int | None = None
    ) -> list[Order]:
        """The account's pending orders, newest first: those older than `before_id`, at most
        `limit` (keyset pages, as ListTrades reads the database)."""
        return _page(account.orders, before_id, limit)

    def has_pending_order(self, account: Account, order_id: int) -> bool:
        return order_id in account.orders

    def open_positions(
        self, account: Account, *, before_id: int | None = None, limit: int | None = None
    ) -> list[Position]:
        """The account's open positions, newest first, paged as pending_orders."""
        return _page(account.positions, before_id, limit)

    def open_position(self, account: Account, position_id: int) -> Position | None:
        return account.positions.get(position_id)

    def counts(self) -> dict[str, int]:
        """Sizes of the book, for logs and metrics."""
        return {
            "accounts": len(self.accounts),
            "positions": len(self.positions),
            "pending_orders": len(self.pending),
        }

    def has_unsaved(self) -> bool:
        """Whether anything was emitted since the last hand-over."""
        return bool(self._outbox)

    @exact
    def equity(self, account: Account) -> Decimal:
        return self._equity(account)

    @exact
    def view(self, account: Account) -> AccountView:
        return self._view(account)

    def _equity(self, account: Account) -> Decimal:
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
        return strictest_levels(self.instruments[s] for s in account.exposure)

    def _view(self, account: Account) -> AccountView:
        equity = self._equity(account)
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

    # ---------------------------------------------------------------- hand-over to persistence

    @exact
    def hand_over(self) -> Handoff:
        """Gives up everything emitted since the last hand-over (the engine keeps no reference
        to it and never touches it again), with the figures of each account it touches as they
        are now, computed once per account."""
        items, self._outbox = self._outbox, []
        views: dict[int, AccountView] = {}
        for item in items:
            if isinstance(item, Event) and item.account_id not in views:
                views[item.account_id] = self._view(self.accounts[item.account_id])
        return Handoff(tuple(items), views)

    # ---------------------------------------------------------------- account commands

    @exact
    def account_of(self, user_id: str, now: datetime) -> Account:
        """The user's account, opened (zero USD balance) on first use."""
        account = self.by_user.get(user_id)
        if account is None:
            account = Account(
                self._account_ids(), user_id, self.shard_id, self.default_leverage, ZERO, now
            )
            self.accounts[account.account_id] = account
            self.by_user[user_id] = account
            self._outbox.append(self._view(account))
        return account

    @exact
    def deposit(self, account: Account, amount: Decimal, now: datetime) -> LedgerEntry:
        check_deposit(amount)
        entry = self._change_balance(account, LedgerKind.DEPOSIT, amount, "", now)
        self._check_risk(account, now)
        return entry

    def set_leverage(self, account: Account, leverage: int, now: datetime) -> None:
        check_account_leverage(leverage)
        account.leverage = leverage
        account.updated_at = now
        self._emit(account, EventType.LEVERAGE_CHANGED, now)

    # ---------------------------------------------------------------- orders

    @exact
    def place_order(self, account: Account, req: OrderRequest, now: datetime) -> PlaceResult:
        fingerprint = req.fingerprint() if req.client_order_id else ""
        if req.client_order_id:
            seen = account.requests.get(req.client_order_id)
            if seen is not None:
                order_id, first = seen
                if first != fingerprint:
                    raise precondition_failed(
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
        if req.symbol in self.halted:
            raise precondition_failed(
                "TRADING_HALTED",
                f"trading in {req.symbol} is halted: {self.halted[req.symbol]}",
                symbol=req.symbol,
            )
        if req.type is not OrderType.MARKET and len(account.orders) >= self.max_pending_orders:
            raise precondition_failed(
                "PENDING_ORDER_LIMIT",
                f"the account already has {self.max_pending_orders} pending orders, the most it"
                " may hold; cancel one first",
                limit=str(self.max_pending_orders),
            )
        leverage = order_leverage(account.leverage, inst, req.leverage)
        quote = self.quotes.get(req.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {req.symbol} yet", symbol=req.symbol)
        entry = entry_price(inst, req, quote, now, self.max_quote_age)
        volume = order_volume(inst, req, leverage, entry)

        order = Order(
            self._order_ids(),
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

    @exact
    def cancel_order(self, account: Account, order_id: int, now: datetime) -> Order:
        order = account.orders.get(order_id)
        if order is None:
            raise not_found(
                "ORDER_NOT_FOUND", "no such pending order on your account", order_id=str(order_id)
            )
        self._end_order(account, order, OrderStatus.CANCELLED, now)
        self._emit(account, EventType.ORDER_CANCELLED, now, order=order.snapshot())
        return order.snapshot()

    @exact
    def expire(self, now: datetime) -> None:
        """Expires pending orders whose expire time has passed."""
        self._expire(now)

    def _expire(self, now: datetime) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, order_id = heapq.heappop(self._expiries)
            order = self.pending.get(order_id)
            if order is None:
                continue
            account = self.accounts[order.account_id]
            self._end_order(account, order, OrderStatus.EXPIRED, now)
            self._emit(account, EventType.ORDER_EXPIRED, now, order=order.snapshot())

    # ---------------------------------------------------------------- positions

    @exact
    def modify_position(
        self,
        account: Account,
        position_id: int,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        now: datetime,
    ) -> Position:
        position = self._position_of(account, position_id)
        inst = self.instruments[position.symbol]
        check_tick(inst, "stop_loss", stop_loss)
        check_tick(inst, "take_profit", take_profit)
        quote = self.quotes.get(position.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {position.symbol} yet")
        check_levels(
            position.side, position.close_price(quote), stop_loss, take_profit, "the current price"
        )
        self._unindex_levels(position)
        position.stop_loss = stop_loss
        position.take_profit = take_profit
        self._index_levels(position)
        self._emit(account, EventType.POSITION_MODIFIED, now, position=position.snapshot())
        return position.snapshot()

    @exact
    def close_position(
        self, account: Account, position_id: int, volume: Decimal | None, now: datetime
    ) -> CloseResult:
        position = self._position_of(account, position_id)
        if volume is not None:
            check_close_volume(self.instruments[position.symbol], position.volume, volume)
        quote = self.quotes.get(position.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {position.symbol} yet")
        check_fresh(quote, now, self.max_quote_age)
        trade = self._close(
            account, position, volume or position.volume, quote, CloseReason.CLIENT, now
        )
        self._check_risk(account, now)
        rest_open = account.positions.get(position_id)
        return CloseResult(trade, rest_open.snapshot() if rest_open else None)

    @exact
    def force_close(
        self, account: Account, position_id: int, note: str, now: datetime
    ) -> CloseResult:
        """An operator closes a whole position at the market; `note` (why) goes on the trade."""
        position = self._position_of(account, position_id)
        quote = self.quotes.get(position.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {position.symbol} yet")
        check_fresh(quote, now, self.max_quote_age)
        trade = self._close(
            account, position, position.volume, quote, CloseReason.OPERATOR, now, note
        )
        self._check_risk(account, now)
        return CloseResult(trade, None)

    # ---------------------------------------------------------------- ticks

    @exact
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
        self._settle_watches()  # at the quotes the accounts were last checked at
        self._ticking = True
        try:
            self._on_quote(symbol, bid, ask, time, now, previous)
        finally:
            self._ticking = False

    @exact
    def settle_watches(self) -> None:
        """Re-arms the margin watch of every account a command has changed since the last
        tick, exactly as if it had been re-armed by the command."""
        self._settle_watches()

    def _settle_watches(self) -> None:
        stale, self._stale = self._stale, {}
        for account in stale.values():
            mc, so = self.levels(account)
            self._rearm(account, self._equity(account), mc, so)

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
        self._expire(now)
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
            except Refusal as exc:  # e.g. not enough free margin now: an event, not a drop
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

    def _position_of(self, account: Account, position_id: int) -> Position:
        position = account.positions.get(position_id)
        if position is None:
            raise not_found(
                "POSITION_NOT_FOUND",
                "no such open position on your account",
                position_id=str(position_id),
            )
        return position

    def _fill(self, account: Account, order: Order, quote: Quote, now: datetime) -> Position:
        """Opens the order's position at `quote`, if free margin covers it (including the
        spread the position starts with); raises INSUFFICIENT_MARGIN otherwise. Returns a
        snapshot of the new position."""
        inst = self.instruments[order.symbol]
        price = quote.ask if order.side is Side.BUY else quote.bid
        margin = margin_of(order.volume, inst.contract_size, price, order.leverage)
        units = order.volume * inst.contract_size
        spread_cost = units * (quote.ask - quote.bid)
        # A hedging leg may need no extra margin at all: only the symbol's unhedged volume counts.
        exposure = account.exposure.get(order.symbol)
        extra = (
            margin
            if exposure is None
            else exposure.margin_with(order.side, units, margin) - exposure.margin()
        )
        free_after = self._equity(account) - spread_cost - account.margin - extra
        if free_after < 0:
            raise precondition_failed(
                "INSUFFICIENT_MARGIN",
                "free margin does not cover the margin this order needs",
                required_margin=str(extra),
                free_margin=str(money(self._equity(account) - account.margin)),
            )
        if order.status is OrderStatus.PENDING and order.order_id in self.pending:
            self._end_order(account, order, OrderStatus.FILLED, now)
        else:
            order.status = OrderStatus.FILLED
            order.updated_at = now
        position = Position(
            self._position_ids(),
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
        exposure = account.exposure.get(position.symbol)
        if exposure is None:
            exposure = account.exposure[position.symbol] = Exposure()
        before = exposure.margin()
        exposure.add(position, 1)
        account.margin += exposure.margin() - before
        self._index_levels(position)

    def _close(
        self,
        account: Account,
        position: Position,
        volume: Decimal,
        quote: Quote,
        reason: CloseReason,
        now: datetime,
        note: str = "",
    ) -> Trade:
        price = position.close_price(quote)
        inst = self.instruments[position.symbol]
        units = volume * inst.contract_size
        pnl = pnl_of(position.side, units, position.open_price, price)
        trade = Trade(
            self._trade_ids(),
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
            note,
        )
        exposure = account.exposure[position.symbol]
        before = exposure.margin()
        exposure.add(position, -1)
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
            exposure.add(position, 1)
            snapshot = position.snapshot()
        account.margin += exposure.margin() - before
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
            self._ledger_ids(),
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
        # Fully hedged positions need no margin, so open positions (not margin) say whether
        # there is anything to check: at zero margin the levels are crossed at zero equity.
        if account.positions:
            mc, so = self.levels(account)
            equity = self._equity(account)
            if equity * HUNDRED <= account.margin * so:
                self._stop_out(account, so, now)
                mc, so = self.levels(account)
                equity = self._equity(account)
        if not account.positions:  # no position left (or none to begin with)
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
        """Closes positions in stop-out order until the margin level is above the stop-out
        level (negative balance protection follows in _check_risk)."""
        while account.positions:
            if self._equity(account) * HUNDRED > account.margin * so:
                break
            worst = next_to_stop_out(account.positions.values(), self.quotes)
            if worst is None:
                break
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
        """Indexes the prices at which this account must be looked at again (see
        risk.watch_levels). `equity`, `mc` and `so` are the account's figures now."""
        self._disarm(account)
        if not account.positions:
            return
        levels = watch_levels(
            account.exposure, self.quotes, equity, account.margin, mc, so, account.margin_call
        )
        add = self.index.add
        ref = account.account_id
        account.watch.extend(
            add(symbol, book, price, Kind.WATCH, ref) for symbol, book, price in levels
        )

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
        self._sequence += 1
        event = Event(self._sequence, type, now, order, position, trade, ledger, account.account_id)
        self._outbox.append(event)
        return event


T = TypeVar("T")


def _page(by_id: Mapping[int, T], before_id: int | None, limit: int | None) -> list[T]:
    ids = sorted((i for i in by_id if before_id is None or i < before_id), reverse=True)
    return [by_id[i] for i in ids[:limit]]
