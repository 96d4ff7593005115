"""The trading engine: applies every rule of docs/trading-rules.md (accounts, orders, positions,
SL/TP, margin call and stop-out) to a shard's state, in memory, with no I/O.

One Engine owns the accounts of one shard. Commands and ticks are plain synchronous calls applied
in order (the caller runs them on one event loop); `now` is always passed in, ids and sequences
come from counters, so a run is deterministic and unit-testable. Every state change is emitted as
an Event; the persistence layer takes them with `hand_over()` and commits them (group commit)
before the command's caller is answered. Readers use the query methods, never the dictionaries.

The rules themselves live in modules of their own, pure where the rule is (docs/architecture.md
lists them): order checks and sizing in orders.py, idempotent retries in idempotency.py, account
opening in accounts.py, equity in valuation.py, margin and stop-out in risk.py, per-account-type
quotes and commission in pricing.py, market hours in market_hours.py, trailing stops in
trailing.py, swaps in swaps.py, trigger placement in trigger_books.py and arming.py. This module
holds the state and applies them in order. A refused command raises Refusal (kit.refusal) and
changes nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from kit.data.account_types import STANDARD, AccountType, fallback_types
from kit.data.instruments import Instrument
from kit.refusal import Refusal, not_found, unavailable
from services.trading.accounts import account_type_named, check_account_limit, opening_leverage
from services.trading.arming import arm_order, arm_position, disarm_position
from services.trading.idempotency import replayed_order
from services.trading.ids import ShardIds
from services.trading.market_hours import check_trading, is_trading
from services.trading.model import (
    HUNDRED,
    ZERO,
    Account,
    AccountKind,
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
    RolloverMark,
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
    check_type_leverage,
    check_withdrawal,
    entry_price,
    order_leverage,
    order_volume,
    pending_order_limit,
    trading_halted,
    unknown_symbol,
)
from services.trading.pricing import TypePricing
from services.trading.risk import (
    added_margin,
    check_leverage_change,
    check_margin_cover,
    hedged_total,
    leverage_change_margins,
    next_to_stop_out,
    strictest_levels,
    watch_levels,
)
from services.trading.swaps import ONE_DAY, position_swap, rollover_at_or_before, rollovers_due
from services.trading.trailing import check_trailing_stop, trailed_stop
from services.trading.triggers import Kind, TriggerIndex
from services.trading.valuation import account_view, equity_of

__all__ = ["CloseResult", "Engine", "OrderRequest", "PlaceResult"]

DEFAULT_LEVERAGE = 100
# Pending orders per account (MT5 servers have the same kind of limit): each is indexed and
# listed, so an account must not be able to grow them without bound.
DEFAULT_MAX_PENDING_ORDERS = 200
# Trading accounts per user (the default one included): each is kept in memory.
DEFAULT_MAX_ACCOUNTS = 10


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
        account_types: Mapping[str, AccountType] | None = None,
        max_accounts: int = DEFAULT_MAX_ACCOUNTS,
        trading_sessions: bool = True,
    ) -> None:
        self.instruments = dict(instruments)
        # False: every instrument trades around the clock (platforms tested at any hour).
        self.trading_sessions = trading_sessions
        self.max_pending_orders = max_pending_orders
        self.max_accounts = max_accounts
        # Without the account_types table (unit tests): one Standard type with the strictest
        # levels of the instruments' groups, as before account types existed.
        self.account_types = dict(
            account_types or fallback_types(*strictest_levels(self.instruments.values()))
        )
        self.pricing = TypePricing(self.account_types, self.instruments.values())
        self.shard_id = shard_id
        self.default_leverage = default_leverage
        self.max_quote_age = max_quote_age
        self.quotes: dict[str, Quote] = {}
        self.accounts: dict[int, Account] = {}
        self.by_user: dict[str, Account] = {}  # the default account of each user
        self.user_accounts: dict[str, list[Account]] = {}  # all of them, oldest first
        self.positions: dict[int, Position] = {}
        self.pending: dict[int, Order] = {}
        self.index = TriggerIndex()
        self._expiries: list[tuple[datetime, int]] = []
        # Events (and newly opened accounts, rollover marks) not yet handed over, in order.
        self._outbox: list[Event | AccountView | RolloverMark] = []
        # The last daily rollover charged (None: not known yet, see _roll) and the next one.
        self._last_rollover: datetime | None = None
        self._next_rollover: datetime | None = None
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

    # ---------------------------------------------------------------- restore (from the DB)

    @property
    def last_rollover(self) -> datetime | None:
        """The last daily rollover charged; None until the engine has seen the clock."""
        return self._last_rollover

    def restore_rollover(self, last_rollover: datetime) -> None:
        """The last rollover this shard charged, as committed."""
        self._last_rollover = last_rollover
        self._next_rollover = last_rollover + ONE_DAY

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
        self._register(account)

    def _register(self, account: Account) -> None:
        self.accounts[account.account_id] = account
        if account.is_default:
            self.by_user[account.user_id] = account
        owned = self.user_accounts.setdefault(account.user_id, [])
        owned.append(account)
        owned.sort(key=lambda a: a.account_id)

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

    def quote(self, symbol: str, account_type: str = STANDARD) -> Quote | None:
        """The latest quote of `symbol` as accounts of `account_type` trade it."""
        quote = self.quotes.get(symbol)
        return None if quote is None else self.pricing.typed_quote(account_type, quote)

    @exact
    def follow_markup(self, symbol: str, markup: Decimal) -> None:
        """The published quotes of `symbol` now carry `markup` (the operators changed it): the
        account types' spreads are taken relative to it from now on, and the triggers of
        accounts whose type trades another spread are indexed again at the new distance."""
        inst = self.instruments.get(symbol)
        if inst is None or inst.spread_markup == markup:
            return
        inst = self.instruments[symbol] = replace(inst, spread_markup=markup)
        moved = self.pricing.follow(inst)
        if not moved:
            return
        for position in self.positions.values():
            account = self.accounts[position.account_id]
            if position.symbol == symbol and account.account_type in moved:
                disarm_position(self.index, position)
                self._index_levels(account, position)
                self._recheck.add(account.account_id)
        for order in list(self.pending.values()):
            account = self.accounts[order.account_id]
            if order.symbol == symbol and account.account_type in moved:
                self.index.remove(order.handle)
                order.handle = self._order_trigger(account, order)

    def account_type(self, account: Account) -> AccountType:
        return self.account_types[account.account_type]

    def accounts_of(self, user_id: str) -> list[Account]:
        """The user's accounts, the default one first, then oldest first."""
        owned = self.user_accounts.get(user_id, [])
        return sorted(owned, key=lambda a: not a.is_default)

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
        return equity_of(account, self.quotes, self.pricing)

    @exact
    def view(self, account: Account) -> AccountView:
        return self._view(account)

    def levels(self, account: Account) -> tuple[Decimal, Decimal]:
        """(margin call, stop-out) levels in percent, of the account's type."""
        account_type = self.account_types[account.account_type]
        return account_type.margin_call_level, account_type.stop_out_level

    def _view(self, account: Account) -> AccountView:
        mc, so = self.levels(account)
        return account_view(account, equity_of(account, self.quotes, self.pricing), mc, so)

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
        """The user's default account (Standard, demo), opened with a zero USD balance on
        first use."""
        account = self.by_user.get(user_id)
        if account is None:
            account = Account(
                self._account_ids(), user_id, self.shard_id, self.default_leverage, ZERO, now
            )
            self._register(account)
            self._outbox.append(self._view(account))
        return account

    def account_for(self, user_id: str, account_id: int | None, now: datetime) -> Account:
        """The user's account `account_id`, or the default one when None. Another user's
        account and an unknown id are the same answer, so ids reveal nothing."""
        if account_id is None:
            return self.account_of(user_id, now)
        account = self.accounts.get(account_id)
        if account is None or account.user_id != user_id:
            raise not_found(
                "ACCOUNT_NOT_FOUND",
                "no such trading account among yours",
                account_id=str(account_id),
            )
        return account

    @exact
    def create_account(
        self,
        user_id: str,
        type_name: str,
        kind: AccountKind,
        leverage: int,
        swap_free: bool,
        now: datetime,
    ) -> Account:
        """Opens another account for the user (zero balance); the default one is opened
        first if the user has none yet. `leverage` 0: the platform default, capped by the
        type."""
        account_type = account_type_named(self.account_types, type_name)
        leverage = opening_leverage(leverage, self.default_leverage, account_type)
        owned = self.user_accounts.get(user_id, [])
        held = len(owned) + (0 if user_id in self.by_user else 1)
        check_account_limit(held, self.max_accounts)
        self.account_of(user_id, now)
        account = Account(
            self._account_ids(),
            user_id,
            self.shard_id,
            leverage,
            ZERO,
            now,
            account_type=type_name,
            kind=kind,
            swap_free=swap_free,
            is_default=False,
        )
        self._register(account)
        self._outbox.append(self._view(account))
        self._emit(account, EventType.ACCOUNT_CREATED, now)
        return account

    @exact
    def deposit(self, account: Account, amount: Decimal, now: datetime) -> LedgerEntry:
        self._roll(now)
        check_deposit(amount)
        entry = self._change_balance(account, LedgerKind.DEPOSIT, amount, "", now)
        self._check_risk(account, now)
        return entry

    @exact
    def withdraw(self, account: Account, amount: Decimal, now: datetime) -> LedgerEntry:
        """Takes demo funds out: at most the free margin (and never below a zero balance)."""
        self._roll(now)
        free = min(equity_of(account, self.quotes, self.pricing) - account.margin, account.balance)
        check_withdrawal(amount, free)
        entry = self._change_balance(account, LedgerKind.WITHDRAWAL, -amount, "", now)
        self._check_risk(account, now)
        return entry

    @exact
    def set_leverage(self, account: Account, leverage: int, now: datetime) -> None:
        """Sets the account leverage and margins the open positions at it (each capped by its
        instrument); refused when the new margin would exceed the equity."""
        self._roll(now)
        check_account_leverage(leverage)
        check_type_leverage(self.account_type(account), leverage)
        margins = leverage_change_margins(account.positions.values(), self.instruments, leverage)
        required = hedged_total(account.positions.values(), margins)
        if margins:  # no position: any leverage will do
            check_leverage_change(leverage, required, equity_of(account, self.quotes, self.pricing))
        account.leverage = leverage
        account.updated_at = now
        for position_id, (position_leverage, margin) in margins.items():
            position = account.positions[position_id]
            if position.leverage == position_leverage and position.margin == margin:
                continue
            exposure = account.exposure[position.symbol]
            before = exposure.margin()
            exposure.add(position, -1)
            position.leverage = position_leverage
            position.margin = margin
            exposure.add(position, 1)
            account.margin += exposure.margin() - before
            self._emit(account, EventType.POSITION_MODIFIED, now, position=position.snapshot())
        self._emit(account, EventType.LEVERAGE_CHANGED, now)
        self._check_risk(account, now)

    # ---------------------------------------------------------------- orders

    @exact
    def place_order(self, account: Account, req: OrderRequest, now: datetime) -> PlaceResult:
        self._roll(now)
        fingerprint = ""
        if req.client_order_id:
            fingerprint = req.fingerprint()
            first_order = replayed_order(account, req, fingerprint, now)
            if first_order is not None:
                return PlaceResult(first_order, None, duplicate=True)

        inst = self.instruments.get(req.symbol)
        if inst is None:
            raise unknown_symbol(req.symbol)
        if req.symbol in self.halted:
            raise trading_halted(req.symbol, self.halted[req.symbol])
        if req.type is not OrderType.MARKET and len(account.orders) >= self.max_pending_orders:
            raise pending_order_limit(self.max_pending_orders)
        if req.type is OrderType.MARKET:  # pending orders may wait for the open
            check_trading(inst, now, self.trading_sessions)
        leverage = order_leverage(account.leverage, inst, req.leverage)
        quote = self.quotes.get(req.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {req.symbol} yet", symbol=req.symbol)
        typed = self.pricing.typed_quote(account.account_type, quote)
        entry = entry_price(inst, req, typed, now, self.max_quote_age)
        volume = order_volume(inst, req, leverage, entry)
        # A market BUY trails the bid it closes at; a pending order the price it fills at.
        trails = typed.bid if req.type is OrderType.MARKET else entry
        check_trailing_stop(inst, req.trailing_stop, req.side, trails)

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
            trailing_stop=req.trailing_stop,
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
        self._roll(now)
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
        self._roll(now)
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
        trailing_stop: Decimal | None = None,
    ) -> Position:
        """Replaces the position's stop-loss, take-profit and trailing stop (None clears one).
        A trailing stop sets the stop-loss at its distance from the current price, unless the
        stop-loss given is already better for the position."""
        self._roll(now)
        position = self._position_of(account, position_id)
        inst = self.instruments[position.symbol]
        check_tick(inst, "stop_loss", stop_loss)
        check_tick(inst, "take_profit", take_profit)
        quote = self.quotes.get(position.symbol)
        if quote is None:
            raise unavailable("NO_QUOTE", f"no quote for {position.symbol} yet")
        typed = self.pricing.typed_quote(account.account_type, quote)
        current = position.close_price(typed)
        check_levels(position.side, current, stop_loss, take_profit, "the current price")
        check_trailing_stop(inst, trailing_stop, position.side, current)
        if trailing_stop is not None:
            stop_loss = trailed_stop(position.side, current, trailing_stop, stop_loss)
        disarm_position(self.index, position)
        position.stop_loss = stop_loss
        position.take_profit = take_profit
        position.trailing_stop = trailing_stop
        self._index_levels(account, position)
        self._emit(account, EventType.POSITION_MODIFIED, now, position=position.snapshot())
        return position.snapshot()

    @exact
    def close_position(
        self, account: Account, position_id: int, volume: Decimal | None, now: datetime
    ) -> CloseResult:
        self._roll(now)
        position = self._position_of(account, position_id)
        if volume is not None:
            check_close_volume(self.instruments[position.symbol], position.volume, volume)
        check_trading(self.instruments[position.symbol], now, self.trading_sessions)
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
        self._roll(now)
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
        self._roll(now)
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
            self._rearm(account, equity_of(account, self.quotes, self.pricing), mc, so)

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
        if not is_trading(self.instruments[symbol], now, self.trading_sessions):
            # A closed market's quotes fire nothing: pending orders, SL/TP, trailing stops and
            # margin watches stay indexed and are judged on the first quote after the open.
            return
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
            if kind is Kind.TRAIL:
                if position.trail_handle == handle:
                    position.trail_handle = 0
                    self._trail(position, quote, now)
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

    def _trail(self, position: Position, quote: Quote, now: datetime) -> None:
        """Moves a trailing stop's stop-loss to its distance from the price of `quote`."""
        assert position.trailing_stop is not None
        account = self.accounts[position.account_id]
        current = position.close_price(self.pricing.typed_quote(account.account_type, quote))
        disarm_position(self.index, position)
        position.stop_loss = trailed_stop(
            position.side, current, position.trailing_stop, position.stop_loss
        )
        self._index_levels(account, position)
        self._emit(account, EventType.TRAILING_STOP_MOVED, now, position=position.snapshot())

    # ---------------------------------------------------------------- rollover (swaps)

    def _roll(self, now: datetime) -> None:
        """Charges every rollover passed since the last one charged, once each, in order. The
        first time the engine has none (a new shard), the latest passed one is recorded as
        charged: swaps start with the next rollover."""
        due_at = self._next_rollover
        if due_at is not None and now < due_at:
            return
        latest = rollover_at_or_before(now)
        if self._last_rollover is not None:
            for rollover in rollovers_due(self._last_rollover, latest):
                self._charge_swaps(rollover, now)
        self.restore_rollover(latest)
        self._outbox.append(RolloverMark(self.shard_id, latest))

    def _charge_swaps(self, rollover: datetime, now: datetime) -> None:
        """One rollover: the swap of every open position of every account that is not
        swap-free, a SWAP ledger entry and a SWAP_CHARGED event each."""
        for account in self.accounts.values():
            if account.swap_free or not account.positions:
                continue
            for position in list(account.positions.values()):
                quote = self.quotes.get(position.symbol)
                if quote is not None:
                    quote = self.pricing.typed_quote(account.account_type, quote)
                inst = self.instruments[position.symbol]
                amount = position_swap(inst, position, quote, rollover)
                if not amount:
                    continue
                position.swap += amount
                account.balance += amount
                account.updated_at = now
                entry = LedgerEntry(
                    self._ledger_ids(),
                    account.account_id,
                    LedgerKind.SWAP,
                    amount,
                    account.balance,
                    str(position.position_id),
                    now,
                )
                self._emit(
                    account, EventType.SWAP_CHARGED, now, position=position.snapshot(), ledger=entry
                )
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
        quote = self.pricing.typed_quote(account.account_type, quote)
        price = quote.ask if order.side is Side.BUY else quote.bid
        margin = margin_of(order.volume, inst.contract_size, price, order.leverage)
        units = order.volume * inst.contract_size
        spread_cost = units * (quote.ask - quote.bid)
        commission = self.pricing.commission(account.account_type, order.symbol, order.volume)
        extra = added_margin(account.exposure.get(order.symbol), order.side, units, margin)
        check_margin_cover(
            equity_of(account, self.quotes, self.pricing),
            account.margin,
            spread_cost,
            commission,
            extra,
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
            commission=-commission,
            trailing_stop=order.trailing_stop,
        )
        if order.trailing_stop is not None:  # the stop-loss starts at the distance, or better
            position.stop_loss = trailed_stop(
                order.side, position.close_price(quote), order.trailing_stop, order.stop_loss
            )
        order.fill_price = price
        order.position_id = position.position_id
        self._add_position(account, position)
        opened = position.snapshot()
        # A filled order never changes again (it is in no book), so it is its own snapshot.
        self._emit(account, EventType.ORDER_FILLED, now, order=order)
        self._emit(account, EventType.POSITION_OPENED, now, position=opened)
        if commission:
            self._change_balance(
                account, LedgerKind.COMMISSION, -commission, str(position.position_id), now
            )
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
        self._index_levels(account, position)

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
        price = position.close_price(self.pricing.typed_quote(account.account_type, quote))
        inst = self.instruments[position.symbol]
        units = volume * inst.contract_size
        pnl = pnl_of(position.side, units, position.open_price, price)
        # The open side's commission of the part closed (all of it on a whole close), and
        # this close's side.
        whole = volume == position.volume
        open_side = (
            position.commission if whole else money(position.commission * volume / position.volume)
        )
        close_side = self.pricing.commission(account.account_type, position.symbol, volume)
        # Swaps were booked at each rollover; the trade shows the part closed accumulated.
        swap = position.swap if whole else money(position.swap * volume / position.volume)
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
            open_side - close_side,
            swap,
        )
        exposure = account.exposure[position.symbol]
        before = exposure.margin()
        exposure.add(position, -1)
        if whole:
            disarm_position(self.index, position)
            del self.positions[position.position_id]
            del account.positions[position.position_id]
            position.closed_at = now
            if exposure.count == 0:
                del account.exposure[position.symbol]
            snapshot = position  # closed: the engine lets go of it, so it never changes again
        else:
            position.commission -= open_side
            position.swap -= swap
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
        if close_side:
            self._change_balance(
                account, LedgerKind.COMMISSION, -close_side, str(position.position_id), now
            )
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
            equity = equity_of(account, self.quotes, self.pricing)
            if equity * HUNDRED <= account.margin * so:
                self._stop_out(account, so, now)
                mc, so = self.levels(account)
                equity = equity_of(account, self.quotes, self.pricing)
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
            if equity_of(account, self.quotes, self.pricing) * HUNDRED > account.margin * so:
                break
            # Positions in a closed market cannot be closed: they wait for the open.
            quotes = {
                s: self.pricing.typed_quote(account.account_type, q)
                for s, q in self.quotes.items()
                if is_trading(self.instruments[s], now, self.trading_sessions)
            }
            worst = next_to_stop_out(account.positions.values(), quotes)
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
        kind = account.account_type
        quotes = self.quotes
        pricing = self.pricing
        if any(pricing.is_shifted(kind, s) for s in account.exposure):
            quotes = {
                s: pricing.typed_quote(kind, quotes[s]) for s in account.exposure if s in quotes
            }
        levels = watch_levels(
            account.exposure, quotes, equity, account.margin, mc, so, account.margin_call
        )
        add = self.index.add
        ref = account.account_id
        price_of = pricing.book_price
        account.watch.extend(
            add(symbol, book, price_of(kind, symbol, book, price), Kind.WATCH, ref)
            for symbol, book, price in levels
        )

    def _index_order(self, account: Account, order: Order) -> None:
        order.handle = self._order_trigger(account, order)
        self.pending[order.order_id] = order
        account.orders[order.order_id] = order
        if order.expire_at is not None:
            heapq.heappush(self._expiries, (order.expire_at, order.order_id))

    def _order_trigger(self, account: Account, order: Order) -> int:
        return arm_order(self.index, self.pricing, account.account_type, order)

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

    def _index_levels(self, account: Account, position: Position) -> None:
        tick_size = self.instruments[position.symbol].tick_size
        arm_position(self.index, self.pricing, account.account_type, position, tick_size)

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
