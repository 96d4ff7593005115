"""Account types and several accounts per user (issue 15 items 1, 2, 6, 8), on the pure engine
with the seeded types: exact commission, spread, level, leverage and withdrawal figures."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from exness.market.v1 import market_pb2

from kit.refusal import Refusal
from services.trading.engine import Engine
from services.trading.model import (
    AccountKind,
    CloseReason,
    Event,
    EventType,
    LedgerKind,
    OrderStatus,
)
from services.trading.tick_feed import apply_quote
from tests.trading.support import Clock, D, market, pending, quote, typed_engine
from tests.trading.test_engine_rules import BUY, LIMIT, SELL, events, refused

DEMO = AccountKind.DEMO


def opened(engine: Engine, clock: Clock, type_name: str, amount: str = "10000") -> int:
    """A new funded account of `type_name` for alice; its id."""
    account = engine.create_account("alice", type_name, DEMO, 0, False, clock.now)
    engine.deposit(account, D(amount), clock.now)
    return account.account_id


def ledger_of(all_events: list[Event], account_id: int) -> list[tuple[LedgerKind, D, str]]:
    return [
        (e.ledger.kind, e.ledger.amount, e.ledger.reference_id)
        for e in all_events
        if e.ledger is not None and e.ledger.account_id == account_id
    ]


def test_raw_spread_fills_at_its_tighter_spread_and_pays_commission_both_sides() -> None:
    engine, clock = typed_engine()
    raw = engine.accounts[opened(engine, clock, "raw_spread")]
    standard = engine.account_of("alice", clock.now)
    engine.deposit(standard, D(10000), clock.now)
    quote(engine, clock, "EURUSD", "1.08500", "1.08512")  # the published (Standard) quote
    # Standard markup 0.00010, Raw Spread none: 0.00005 inside on each side.
    assert engine.quote("EURUSD", "raw_spread") is not None
    typed = engine.quote("EURUSD", "raw_spread")
    assert typed is not None
    assert (typed.bid, typed.ask) == (D("1.08505"), D("1.08507"))

    raw_buy = engine.place_order(raw, market("EURUSD", BUY, "1"), clock.now).position
    std_buy = engine.place_order(standard, market("EURUSD", BUY, "1"), clock.now).position
    assert raw_buy is not None
    assert std_buy is not None
    assert raw_buy.open_price == D("1.08507")
    assert std_buy.open_price == D("1.08512")
    assert raw_buy.margin == D("1085.07")  # 1 x 100000 x 1.08507 / 100
    assert raw_buy.commission == D("-3.50")  # USD 3.50 per lot per side
    assert std_buy.commission == 0
    assert raw.balance == D("9996.50")

    quote(engine, clock, "EURUSD", "1.08600", "1.08612")
    raw_close = engine.close_position(raw, raw_buy.position_id, None, clock.now).trade
    std_close = engine.close_position(standard, std_buy.position_id, None, clock.now).trade
    assert raw_close.close_price == D("1.08605")
    assert raw_close.realized_pnl == D("98.00")
    assert raw_close.commission == D("-7.00")  # open side and close side
    assert std_close.close_price == D("1.08600")
    assert std_close.realized_pnl == D("88.00")
    assert std_close.commission == 0
    assert raw.balance == D("10091.00")
    assert standard.balance == D("10088.00")

    all_events = events(engine)
    position = str(raw_buy.position_id)
    assert ledger_of(all_events, raw.account_id) == [
        (LedgerKind.DEPOSIT, D(10000), ""),
        (LedgerKind.COMMISSION, D("-3.50"), position),
        (LedgerKind.REALIZED_PNL, D("98.00"), str(raw_close.trade_id)),
        (LedgerKind.COMMISSION, D("-3.50"), position),
    ]
    assert sum(a for _, a, _ in ledger_of(all_events, raw.account_id)) == raw.balance


def test_zero_commission_on_a_partial_close_splits_the_open_side() -> None:
    engine, clock = typed_engine()
    zero = engine.accounts[opened(engine, clock, "zero")]
    quote(engine, clock, "XAUUSD", "2400.00", "2400.40")  # Zero: 2400.10 / 2400.30
    position = engine.place_order(zero, market("XAUUSD", BUY, "0.50"), clock.now).position
    assert position is not None
    assert position.open_price == D("2400.30")
    assert position.commission == D("-2.50")  # 0.5 lot x USD 5.00
    quote(engine, clock, "XAUUSD", "2401.00", "2401.40")
    result = engine.close_position(zero, position.position_id, D("0.20"), clock.now)
    assert result.trade.realized_pnl == D("16.00")  # 0.2 x 100 x (2401.10 - 2400.30)
    assert result.trade.commission == D("-2.00")  # 1.00 open side + 1.00 close side
    assert result.position is not None
    assert result.position.commission == D("-1.50")
    assert zero.balance == D("10000") - D("2.50") + D("16.00") - D("1.00")


@pytest.mark.parametrize("type_name", ["standard", "pro"])
def test_types_without_commission_book_none(type_name: str) -> None:
    engine, clock = typed_engine()
    account = engine.accounts[opened(engine, clock, type_name)]
    quote(engine, clock, "BTCUSD", "65000.00", "65010.00")
    position = engine.place_order(account, market("BTCUSD", SELL, "0.10"), clock.now).position
    assert position is not None
    # Pro's markup is 5.00 against the default 10.00: 2.50 inside on each side.
    assert position.open_price == {"standard": D("65000.00"), "pro": D("65002.50")}[type_name]
    trade = engine.close_position(account, position.position_id, None, clock.now).trade
    assert position.commission == trade.commission == 0
    kinds = [k for k, _, _ in ledger_of(events(engine), account.account_id)]
    assert LedgerKind.COMMISSION not in kinds


def test_margin_call_level_comes_from_the_account_type() -> None:
    engine, clock = typed_engine()
    standard = engine.account_of("alice", clock.now)
    engine.deposit(standard, D(1000), clock.now)
    pro = engine.accounts[opened(engine, clock, "pro", "1000")]
    quote(engine, clock, "BTCUSD", "65000.00", "65010.00")
    engine.place_order(standard, market("BTCUSD", BUY, "1"), clock.now)  # margin 650.10
    engine.place_order(pro, market("BTCUSD", BUY, "1"), clock.now)  # at 65007.50: 650.08
    assert engine.view(standard).margin_call_level == D(60)
    assert engine.view(pro).margin_call_level == D(30)
    events(engine)
    # Standard: equity 390.00 = 59.99 % <= 60 %; Pro: 395.00 = 60.76 %, above its 30 %.
    quote(engine, clock, "BTCUSD", "64400.00", "64410.00")
    calls = [e.account_id for e in events(engine) if e.type is EventType.MARGIN_CALL]
    assert calls == [standard.account_id]
    assert standard.margin_call
    assert not pro.margin_call
    # Pro: equity 95.00 = 14.61 % <= 30 %.
    quote(engine, clock, "BTCUSD", "64100.00", "64110.00")
    assert pro.margin_call


def test_stop_loss_triggers_on_the_account_types_price() -> None:
    engine, clock = typed_engine()
    raw = engine.accounts[opened(engine, clock, "raw_spread")]
    quote(engine, clock, "EURUSD", "1.08500", "1.08512")
    req = market("EURUSD", BUY, "0.10", stop_loss=D("1.08400"))
    position = engine.place_order(raw, req, clock.now).position
    assert position is not None
    quote(engine, clock, "EURUSD", "1.08398", "1.08410")  # Raw bid 1.08403: above the SL
    assert position.position_id in raw.positions
    quote(engine, clock, "EURUSD", "1.08395", "1.08407")  # Raw bid 1.08400: at the SL
    closed = [e.trade for e in events(engine) if e.trade is not None]
    assert [(t.close_reason, t.close_price) for t in closed] == [
        (CloseReason.STOP_LOSS, D("1.08400"))
    ]


def test_pending_order_triggers_on_the_account_types_price() -> None:
    engine, clock = typed_engine()
    raw = engine.accounts[opened(engine, clock, "raw_spread")]
    quote(engine, clock, "EURUSD", "1.08500", "1.08512")
    order = engine.place_order(raw, pending("EURUSD", BUY, LIMIT, "0.10", "1.08450"), clock.now)
    quote(engine, clock, "EURUSD", "1.08440", "1.08454")  # Raw ask 1.08449: fills
    assert engine.pending.get(order.order.order_id) is None
    [filled] = raw.positions.values()
    assert filled.open_price == D("1.08449")


def test_leverage_change_remargins_open_positions_or_is_refused() -> None:
    engine, clock = typed_engine()
    account = engine.account_of("alice", clock.now)
    engine.deposit(account, D(1000), clock.now)
    quote(engine, clock, "BTCUSD", "65000.00", "65010.00")
    position = engine.place_order(account, market("BTCUSD", BUY, "0.10"), clock.now).position
    assert position is not None
    assert position.margin == D("65.01")
    events(engine)

    engine.set_leverage(account, 10, clock.now)  # 650.10 of margin against 999.00 of equity
    live = account.positions[position.position_id]
    assert (live.leverage, live.margin, account.margin) == (10, D("650.10"), D("650.10"))
    out = events(engine)
    assert [e.type for e in out] == [EventType.POSITION_MODIFIED, EventType.LEVERAGE_CHANGED]

    with pytest.raises(Refusal) as exc:
        engine.set_leverage(account, 5, clock.now)  # would need 1300.20 > 999.00
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "LEVERAGE_CHANGE_REFUSED")
    assert exc.value.metadata == {"required_margin": "1300.20", "equity": "999.00"}
    assert (account.leverage, live.margin, account.margin) == (10, D("650.10"), D("650.10"))
    assert events(engine) == []

    engine.set_leverage(account, 2000, clock.now)  # BTCUSD caps it at 1:400
    assert (live.leverage, live.margin) == (400, D("16.26"))


def test_leverage_above_the_types_maximum_is_invalid() -> None:
    engine, clock = typed_engine()
    engine.account_types["pro"] = replace(engine.account_types["pro"], max_leverage=500)
    with pytest.raises(Refusal) as exc:
        engine.create_account("alice", "pro", DEMO, 1000, False, clock.now)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LEVERAGE", "leverage")
    pro = engine.create_account("alice", "pro", DEMO, 500, False, clock.now)
    with pytest.raises(Refusal) as exc:
        engine.set_leverage(pro, 501, clock.now)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LEVERAGE", "leverage")
    assert pro.leverage == 500


def test_withdraw_within_free_margin() -> None:
    engine, clock = typed_engine()
    account = engine.account_of("alice", clock.now)
    engine.deposit(account, D(1000), clock.now)
    quote(engine, clock, "BTCUSD", "65000.00", "65010.00")
    engine.place_order(account, market("BTCUSD", BUY, "0.10"), clock.now)
    # Equity 999.00 (the spread), margin 65.01: free margin 933.99.
    with pytest.raises(Refusal) as exc:
        engine.withdraw(account, D("934.00"), clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FREE_MARGIN")
    assert exc.value.metadata == {"free_margin": "933.99"}
    assert account.balance == D(1000)
    entry = engine.withdraw(account, D("933.99"), clock.now)
    assert (entry.kind, entry.amount, entry.balance_after) == (
        LedgerKind.WITHDRAWAL,
        D("-933.99"),
        D("66.01"),
    )
    assert engine.view(account).free_margin == 0


def test_withdraw_never_below_a_zero_balance() -> None:
    engine, clock = typed_engine()
    account = engine.account_of("alice", clock.now)
    engine.deposit(account, D(100), clock.now)
    quote(engine, clock, "BTCUSD", "65000.00", "65010.00")
    position = engine.place_order(account, market("BTCUSD", BUY, "0.01"), clock.now).position
    assert position is not None
    quote(engine, clock, "BTCUSD", "75000.00", "75010.00")  # +99.90 floating
    with pytest.raises(Refusal) as exc:
        engine.withdraw(account, D("100.01"), clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FREE_MARGIN")
    engine.withdraw(account, D("100.00"), clock.now)
    assert account.balance == 0


def test_accounts_are_reached_only_by_their_owner() -> None:
    engine, clock = typed_engine()
    mine = engine.create_account("alice", "pro", AccountKind.REAL, 0, True, clock.now)
    theirs = engine.create_account("bob", "zero", DEMO, 0, False, clock.now)
    assert engine.account_for("alice", mine.account_id, clock.now) is mine
    assert engine.account_for("alice", None, clock.now) is engine.by_user["alice"]
    for unknown in (theirs.account_id, theirs.account_id + 1000):
        with pytest.raises(Refusal) as exc:
            engine.account_for("alice", unknown, clock.now)
        refused(exc, grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    listed = engine.accounts_of("alice")
    assert [(a.account_type, a.is_default) for a in listed] == [
        ("standard", True),
        ("pro", False),
    ]
    assert (mine.kind, mine.swap_free, mine.leverage) == (AccountKind.REAL, True, 100)
    created = [e for e in events(engine) if e.type is EventType.ACCOUNT_CREATED]
    assert [e.account_id for e in created] == [mine.account_id, theirs.account_id]


def test_two_accounts_of_one_user_keep_their_own_positions_orders_and_balance() -> None:
    engine, clock = typed_engine()
    a = engine.account_of("alice", clock.now)
    engine.deposit(a, D(5000), clock.now)
    b = engine.accounts[opened(engine, clock, "raw_spread", "7000")]
    quote(engine, clock, "BTCUSD", "65000.00", "65010.00")
    in_a = engine.place_order(a, market("BTCUSD", BUY, "0.10"), clock.now).position
    in_b = engine.place_order(b, pending("BTCUSD", SELL, LIMIT, "0.10", "66000.00"), clock.now)
    assert in_a is not None
    assert [p.position_id for p in engine.open_positions(a)] == [in_a.position_id]
    assert engine.open_positions(b) == []
    assert engine.pending_orders(a) == []
    assert in_b.order.status is OrderStatus.PENDING
    with pytest.raises(Refusal) as exc:
        engine.close_position(b, in_a.position_id, None, clock.now)
    refused(exc, grpc.StatusCode.NOT_FOUND, "POSITION_NOT_FOUND")
    with pytest.raises(Refusal) as exc:
        engine.cancel_order(a, in_b.order.order_id, clock.now)
    refused(exc, grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND")
    assert (a.balance, b.balance) == (D(5000), D(7000))


def test_account_limit_and_unknown_type() -> None:
    engine, clock = typed_engine()
    for _ in range(engine.max_accounts - 1):  # the default account is one of them
        engine.create_account("alice", "standard", DEMO, 0, False, clock.now)
    assert len(engine.accounts_of("alice")) == engine.max_accounts
    with pytest.raises(Refusal) as exc:
        engine.create_account("alice", "pro", DEMO, 0, False, clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_LIMIT")
    assert exc.value.metadata == {"limit": str(engine.max_accounts)}
    with pytest.raises(Refusal) as exc:
        engine.create_account("bob", "gold", DEMO, 0, False, clock.now)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_ACCOUNT_TYPE", "account_type")
    assert "bob" not in engine.by_user


def test_a_changed_default_markup_moves_the_types_prices_and_triggers() -> None:
    engine, clock = typed_engine()
    raw = engine.accounts[opened(engine, clock, "raw_spread")]
    quote(engine, clock, "EURUSD", "1.08500", "1.08512")  # markup 0.00010: Raw 1.08505/07
    req = market("EURUSD", BUY, "0.10", stop_loss=D("1.08400"))
    position = engine.place_order(raw, req, clock.now).position
    assert position is not None
    order = engine.place_order(raw, pending("EURUSD", BUY, LIMIT, "0.10", "1.08405"), clock.now)
    # The operators raise the default markup to 0.00030: published quotes widen by 0.00010 on
    # each side; the Raw Spread account's prices must not move.
    engine.follow_markup("EURUSD", D("0.00030"))
    quote(engine, clock, "EURUSD", "1.08490", "1.08522")
    typed = engine.quote("EURUSD", "raw_spread")
    assert typed is not None
    assert (typed.bid, typed.ask) == (D("1.08505"), D("1.08507"))
    quote(engine, clock, "EURUSD", "1.08391", "1.08423")  # Raw 1.08406 / 1.08408: nothing yet
    assert position.position_id in raw.positions
    assert order.order.order_id in raw.orders
    quote(engine, clock, "EURUSD", "1.08385", "1.08417")  # Raw 1.08400 / 1.08402
    closed = [e.trade for e in events(engine) if e.trade is not None]
    assert [(t.close_reason, t.close_price) for t in closed] == [
        (CloseReason.STOP_LOSS, D("1.08400"))
    ]
    [filled] = raw.positions.values()  # the BUY LIMIT at 1.08405 filled at the Raw ask
    assert filled.open_price == D("1.08402")


def test_the_quote_feed_follows_the_markup_each_quote_carries() -> None:
    engine, clock = typed_engine()
    event = market_pb2.QuoteEvent(spread_markup="0.00030")
    event.quote.symbol, event.quote.bid, event.quote.ask = "EURUSD", "1.08490", "1.08522"
    event.quote.time.FromDatetime(clock.tick())
    apply_quote(engine, event.SerializeToString(), clock.now)
    assert engine.instruments["EURUSD"].spread_markup == D("0.00030")
    typed = engine.quote("EURUSD", "raw_spread")
    assert typed is not None
    assert (typed.bid, typed.ask) == (D("1.08505"), D("1.08507"))
