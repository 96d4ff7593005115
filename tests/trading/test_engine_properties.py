"""Property test: random sequences of commands and ticks never break the money invariants.

The operations: market and pending orders (with stop-loss, take-profit and trailing stops),
hedging legs, modifications, partial and whole closes, cancels, deposits, withdrawals,
leverage changes, ticks and daily rollovers (swaps), on accounts of types with and without
commission, one of them swap-free. After every step, for every account: the ledger sums to the
balance; equity, (hedged) margin, free margin and margin level equal their formulas recomputed
from the open positions; no position is left past its SL/TP; every order accepted (at
placement or by a trigger) left free margin non-negative at the moment it was accepted; and
the P&L a position shows at a quote is the P&L closing it at that quote realises.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.data.instruments import Instrument, SwapType
from kit.refusal import Refusal
from services.trading.codec import position_pb, trade_pb
from services.trading.engine import Engine, OrderRequest
from services.trading.model import (
    HUNDRED,
    Account,
    AccountKind,
    Event,
    Order,
    OrderType,
    Position,
    Quote,
    Side,
    margin_of,
)
from tests.trading.support import Clock, D, account_types, instruments

SYMBOLS = {"BTCUSD": (D("65000"), D("10"), D("0.01")), "ETHUSD": (D("3200"), D("1"), D("0.01"))}
# Account names: a Standard account, a Raw Spread one (commission, tighter spread) and a
# swap-free Zero one.
USERS = ("std", "raw", "free")


def _instruments() -> dict[str, Instrument]:
    """The seeded markups (the published quotes carry them) and percent-per-year swaps."""
    specs = instruments()
    for symbol, markup in (("BTCUSD", "10"), ("ETHUSD", "1")):
        specs[symbol] = replace(
            specs[symbol],
            spread_markup=D(markup),
            swap_type=SwapType.PERCENT_PER_YEAR,
            swap_long=D(-20),
            swap_short=D(-10),
        )
    return specs


class CheckedEngine(Engine):
    """Records the free margin right after every fill (market or triggered)."""

    def __init__(self) -> None:
        super().__init__(
            _instruments(), max_quote_age=timedelta(seconds=30), account_types=account_types()
        )
        self.free_after_fill: list[Decimal] = []

    def _fill(self, account: Account, order: Order, quote: Quote, now: object) -> Position:
        position = super()._fill(account, order, quote, now)  # type: ignore[arg-type]
        self.free_after_fill.append(self.equity(account) - account.margin)
        return position


steps = st.one_of(
    st.tuples(
        st.just("tick"), st.sampled_from(sorted(SYMBOLS)), st.integers(-400, 400), st.integers(0, 5)
    ),
    st.tuples(
        st.just("market"),
        st.sampled_from(USERS),
        st.sampled_from(sorted(SYMBOLS)),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 150),
        st.integers(0, 3),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    st.tuples(st.just("hedge"), st.sampled_from(USERS), st.integers(0, 10)),
    st.tuples(st.just("trail"), st.sampled_from(USERS), st.integers(0, 10), st.integers(0, 3)),
    st.tuples(st.just("rollover"), st.integers(0, 2)),
    st.tuples(st.just("withdraw"), st.sampled_from(USERS), st.integers(1, 3000)),
    st.tuples(
        st.just("pending"),
        st.sampled_from(USERS),
        st.sampled_from(sorted(SYMBOLS)),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.sampled_from([OrderType.LIMIT, OrderType.STOP]),
        st.integers(1, 150),
        st.integers(-300, 300),
    ),
    st.tuples(st.just("close"), st.sampled_from(USERS), st.integers(0, 10), st.integers(0, 3)),
    st.tuples(
        st.just("modify"),
        st.sampled_from(USERS),
        st.integers(0, 10),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    st.tuples(st.just("cancel"), st.sampled_from(USERS), st.integers(0, 10)),
    st.tuples(st.just("deposit"), st.sampled_from(USERS), st.integers(1, 5000)),
    st.tuples(st.just("leverage"), st.sampled_from(USERS), st.sampled_from([1, 10, 100, 400])),
)


def _pick(items: dict[int, object], index: int) -> int | None:
    keys = sorted(items)
    return keys[index % len(keys)] if keys else None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=60))
def test_invariants_hold_after_every_step(program: list[tuple[object, ...]]) -> None:
    engine = CheckedEngine()
    clock = Clock()
    mids = {s: base for s, (base, _, _) in SYMBOLS.items()}
    accounts = {
        "std": engine.account_of("u0", clock.now),
        "raw": engine.create_account("u1", "raw_spread", AccountKind.DEMO, 0, False, clock.now),
        "free": engine.create_account("u1", "zero", AccountKind.DEMO, 0, True, clock.now),
    }
    for account in accounts.values():
        engine.deposit(account, D(2000), clock.now)
    for symbol, (base, spread, _) in SYMBOLS.items():
        engine.on_quote(symbol, base, base + spread, clock.now, clock.now)
    ledger: dict[int, Decimal] = {}
    for step in program:
        now = clock.tick()
        with contextlib.suppress(Refusal):
            _apply(engine, clock, accounts, mids, step, now)
        for item in engine.hand_over().items:
            if isinstance(item, Event) and item.ledger is not None:
                acc = item.ledger.account_id
                ledger[acc] = ledger.get(acc, D(0)) + item.ledger.amount
        for account in accounts.values():
            _check(engine, account, ledger.get(account.account_id, D(0)))
        assert all(free >= 0 for free in engine.free_after_fill)


def _apply(
    engine: Engine,
    clock: Clock,
    accounts: dict[str, Account],
    mids: dict[str, Decimal],
    step: tuple[object, ...],
    now: object,
) -> None:
    kind = step[0]
    if kind == "rollover":  # a day passes (two or three): the clock jumps past 22:00 UTC
        days = int(str(step[1]))
        assert isinstance(now, datetime)
        when = now.replace(hour=22, minute=0, second=1) + timedelta(days=days)
        if when <= now:
            when += timedelta(days=1)
        clock.now = when
        for name, mid in mids.items():
            bid = mid.quantize(D("0.01"))
            engine.on_quote(name, bid, bid + SYMBOLS[name][1], when, when)
        return
    if kind == "tick":
        _, symbol, move, widen = step
        assert isinstance(symbol, str)
        assert isinstance(move, int)
        assert isinstance(widen, int)
        base, spread, _ = SYMBOLS[symbol]
        mids[symbol] = max(base / 4, mids[symbol] + base * move / 10000)
        bid = mids[symbol].quantize(D("0.01"))
        engine.on_quote(symbol, bid, bid + spread * (1 + widen), now, now)  # type: ignore[arg-type]
        return
    account = accounts[str(step[1])]
    if kind == "market":
        _, _, symbol, side, lots, sl, tp, trail = step
        quote = engine.quotes[str(symbol)]
        assert isinstance(side, Side)
        assert isinstance(sl, int)
        assert isinstance(tp, int)
        buy = side is Side.BUY
        ref = quote.bid if buy else quote.ask
        gap = ref / 50
        req = OrderRequest(
            str(symbol),
            side,
            OrderType.MARKET,
            volume=D(str(lots)) / 100,
            stop_loss=(ref - gap * sl if buy else ref + gap * sl).quantize(D("0.01"))
            if sl
            else None,
            take_profit=(ref + gap * tp if buy else ref - gap * tp).quantize(D("0.01"))
            if tp
            else None,
            trailing_stop=(gap * int(str(trail))).quantize(D("0.01")) if trail else None,
        )
        engine.place_order(account, req, now)  # type: ignore[arg-type]
        view = engine.view(account)
        assert view.free_margin >= 0
    elif kind == "pending":
        _, _, symbol, side, type_, lots, offset = step
        quote = engine.quotes[str(symbol)]
        price = (quote.ask + quote.ask * int(str(offset)) / 1000).quantize(D("0.01"))
        request = OrderRequest(str(symbol), side, type_, volume=D(lots) / 100, price=price)  # type: ignore[arg-type]
        engine.place_order(account, request, now)  # type: ignore[arg-type]
    elif kind == "close":
        _, _, index, part = step
        pid = _pick(account.positions, index)  # type: ignore[arg-type]
        if pid is not None:
            position = account.positions[pid]
            volume = None
            if part:
                volume = (position.volume * part / 4).quantize(D("0.01"))  # type: ignore[operator]
                if volume == 0:
                    volume = None
            shown = position_pb(position, engine.quote(position.symbol, account.account_type))
            result = engine.close_position(account, pid, volume, now)  # type: ignore[arg-type]
            if volume is None:  # shown P&L at a quote == realised P&L at that quote
                assert trade_pb(result.trade).realized_pnl == shown.unrealized_pnl
    elif kind == "hedge":  # the opposite leg of an open position, same volume
        pid = _pick(account.positions, step[2])  # type: ignore[arg-type]
        if pid is not None:
            position = account.positions[pid]
            opposite = Side.SELL if position.side is Side.BUY else Side.BUY
            req = OrderRequest(position.symbol, opposite, OrderType.MARKET, volume=position.volume)
            engine.place_order(account, req, now)  # type: ignore[arg-type]
    elif kind == "trail":
        _, _, index, steps_ = step
        pid = _pick(account.positions, index)  # type: ignore[arg-type]
        if pid is not None:
            position = account.positions[pid]
            typed = engine.quote(position.symbol, account.account_type)
            assert typed is not None
            distance = (position.close_price(typed) / 80 * int(str(steps_))).quantize(D("0.01"))
            engine.modify_position(
                account,
                pid,
                None,
                position.take_profit,
                now,  # type: ignore[arg-type]
                distance or None,
            )
    elif kind == "withdraw":
        engine.withdraw(account, D(step[2]), now)  # type: ignore[arg-type]
    elif kind == "modify":
        _, _, index, sl, tp = step
        pid = _pick(account.positions, index)  # type: ignore[arg-type]
        if pid is not None:
            position = account.positions[pid]
            quote = engine.quotes[position.symbol]
            ref = position.close_price(quote)
            gap = ref / 40
            buy = position.side is Side.BUY
            sl_steps, tp_steps = int(str(sl)), int(str(tp))
            sl_price = (ref - gap * sl_steps if buy else ref + gap * sl_steps) if sl_steps else None
            tp_price = (ref + gap * tp_steps if buy else ref - gap * tp_steps) if tp_steps else None
            sl_price = sl_price.quantize(D("0.01")) if sl_price is not None else None
            tp_price = tp_price.quantize(D("0.01")) if tp_price is not None else None
            engine.modify_position(account, pid, sl_price, tp_price, now)  # type: ignore[arg-type]
    elif kind == "cancel":
        oid = _pick(account.orders, step[2])  # type: ignore[arg-type]
        if oid is not None:
            engine.cancel_order(account, oid, now)  # type: ignore[arg-type]
    elif kind == "deposit":
        engine.deposit(account, D(step[2]), now)  # type: ignore[arg-type]
    elif kind == "leverage":
        engine.set_leverage(account, step[2], now)  # type: ignore[arg-type]


def _check(engine: Engine, account: Account, ledger_total: Decimal) -> None:
    assert ledger_total == account.balance
    positions = [p for p in engine.positions.values() if p.account_id == account.account_id]
    assert sorted(p.position_id for p in positions) == sorted(account.positions)
    floating = D(0)
    # symbol -> side -> (units, margin): hedged margin counts only the larger side's excess.
    sides: dict[str, dict[Side, tuple[Decimal, Decimal]]] = {}
    for p in positions:
        inst = engine.instruments[p.symbol]
        quote = engine.quote(p.symbol, account.account_type)
        assert quote is not None
        close = quote.bid if p.side is Side.BUY else quote.ask
        sign = 1 if p.side is Side.BUY else -1
        pnl = sign * p.volume * inst.contract_size * (close - p.open_price)
        floating += pnl
        # Shown P&L at this quote == what closing at it realises: cents, half away from zero
        # (a close settles so; the whole closes of the program check it against the trade).
        realised = pnl.quantize(D("0.01"), rounding=ROUND_HALF_UP)
        assert position_pb(p, quote).unrealized_pnl == format(
            realised if realised else realised.copy_abs(), "f"
        )
        assert p.margin == margin_of(p.volume, inst.contract_size, p.open_price, p.leverage)
        units, held = sides.setdefault(p.symbol, {}).get(p.side, (D(0), D(0)))
        sides[p.symbol][p.side] = (units + p.volume * inst.contract_size, held + p.margin)
        # Nothing is left open beyond a level the market has crossed.
        if p.stop_loss is not None:
            assert close > p.stop_loss if p.side is Side.BUY else close < p.stop_loss
        if p.take_profit is not None:
            assert close < p.take_profit if p.side is Side.BUY else close > p.take_profit
    margin = D(0)
    for by_side in sides.values():
        (lu, lm), (su, sm) = (
            by_side.get(Side.BUY, (D(0), D(0))),
            by_side.get(Side.SELL, (D(0), D(0))),
        )
        big_units, big_margin, small_units = (lu, lm, su) if lu >= su else (su, sm, lu)
        if big_units:
            excess = big_margin * (big_units - small_units) / big_units
            margin += excess.quantize(D("0.01"), rounding=ROUND_CEILING)
    view = engine.view(account)
    equity = account.balance + floating
    assert view.equity == equity
    assert view.margin == margin
    assert view.free_margin == equity - margin
    if margin:
        assert view.margin_level == equity / margin * HUNDRED
    else:
        assert view.margin_level is None
    if positions:  # stopped out down to above the stop-out level (0 %), hedged or not
        assert equity * HUNDRED > margin * view.stop_out_level
    assert account.balance >= 0 or positions
