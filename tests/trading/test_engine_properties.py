"""Property test: random sequences of commands and ticks never break the money invariants.

After every step, for every account: the ledger sums to the balance; equity, margin, free
margin and margin level equal their formulas recomputed from the open positions; no position
is left past its SL/TP; and every order accepted (at placement or by a trigger) left free
margin non-negative at the moment it was accepted.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.refusal import Refusal
from services.trading.engine import Engine, OrderRequest
from services.trading.model import (
    HUNDRED,
    Account,
    Event,
    Order,
    OrderType,
    Position,
    Quote,
    Side,
    margin_of,
)
from tests.trading.support import Clock, D, instruments

SYMBOLS = {"BTCUSD": (D("65000"), D("10"), D("0.01")), "ETHUSD": (D("3200"), D("1"), D("0.01"))}
USERS = ("u0", "u1")


class CheckedEngine(Engine):
    """Records the free margin right after every fill (market or triggered)."""

    def __init__(self) -> None:
        super().__init__(instruments(), max_quote_age=timedelta(seconds=30))
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
    ),
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
    accounts = {u: engine.account_of(u, clock.now) for u in USERS}
    for account in accounts.values():
        engine.deposit(account, D(2000), clock.now)
    for symbol, (base, spread, _) in SYMBOLS.items():
        engine.on_quote(symbol, base, base + spread, clock.now, clock.now)
    ledger: dict[int, Decimal] = {}
    for step in program:
        now = clock.tick()
        with contextlib.suppress(Refusal):
            _apply(engine, accounts, mids, step, now)
        for item in engine.hand_over().items:
            if isinstance(item, Event) and item.ledger is not None:
                acc = item.ledger.account_id
                ledger[acc] = ledger.get(acc, D(0)) + item.ledger.amount
        for account in accounts.values():
            _check(engine, account, ledger.get(account.account_id, D(0)))
        assert all(free >= 0 for free in engine.free_after_fill)


def _apply(
    engine: Engine,
    accounts: dict[str, Account],
    mids: dict[str, Decimal],
    step: tuple[object, ...],
    now: object,
) -> None:
    kind = step[0]
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
        _, _, symbol, side, lots, sl, tp = step
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
            engine.close_position(account, pid, volume, now)  # type: ignore[arg-type]
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
        quote = engine.quotes[p.symbol]
        close = quote.bid if p.side is Side.BUY else quote.ask
        sign = 1 if p.side is Side.BUY else -1
        floating += sign * p.volume * inst.contract_size * (close - p.open_price)
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
