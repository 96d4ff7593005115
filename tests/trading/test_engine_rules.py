"""Every trading rule of docs/trading-rules.md, on the pure in-memory engine."""

from __future__ import annotations

import decimal
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from kit.refusal import Refusal
from kit.rpc.errors import refusal_error
from services.trading.engine import Engine, OrderRequest
from services.trading.model import (
    CloseReason,
    Event,
    EventType,
    LedgerKind,
    OrderStatus,
    OrderType,
    Side,
)
from tests.trading.support import (
    Clock,
    D,
    funded,
    instruments,
    market,
    new_engine,
    pending,
    quote,
)

BUY, SELL = Side.BUY, Side.SELL
LIMIT, STOP = OrderType.LIMIT, OrderType.STOP


def events(engine: Engine) -> list[Event]:
    return [item for item in engine.hand_over().items if isinstance(item, Event)]


def ledger_sum(engine: Engine, account_id: int, all_events: list[Event]) -> D:
    return sum(
        (
            e.ledger.amount
            for e in all_events
            if e.ledger is not None and e.ledger.account_id == account_id
        ),
        D(0),
    )


def refused(
    exc: pytest.ExceptionInfo[Refusal],
    code: grpc.StatusCode,
    reason: str,
    field: str | None = None,
) -> None:
    """The refusal as the wire carries it (through kit's one mapping)."""
    error = refusal_error(exc.value)
    assert error.code == code
    assert error.reason == reason
    if field is not None:
        assert [v.field for v in error.violations] == [field]


# ------------------------------------------------------------------ market orders and margin


def test_buy_fills_at_ask_sell_at_bid_with_margin_formula() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    buy = engine.place_order(account, market("BTCUSD", BUY, "0.10"), clock.now)
    sell = engine.place_order(account, market("BTCUSD", SELL, "0.04"), clock.now)
    assert buy.order.fill_price == D("65010")
    assert buy.order.status is OrderStatus.FILLED
    assert sell.order.fill_price == D("65000")
    assert buy.position is not None
    assert sell.position is not None
    # Margin = volume x contract size x price / leverage (1:100 default).
    assert buy.position.margin == D("65.01")
    assert sell.position.margin == D("26.00")
    view = engine.view(account)
    # Both pay the spread: BUY closes at bid (-1), SELL closes at ask (-0.40).
    assert view.equity == D("9998.6")
    # Hedged: only the BUY's unhedged 0.06 lot is margined, 65.01 x 0.06 / 0.10 = 39.006 -> up.
    assert view.margin == D("39.01")
    assert view.free_margin == D("9959.59")
    assert view.margin_level == D("9998.6") / D("39.01") * 100


def test_contract_size_and_leverage_cap_for_forex() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    engine.set_leverage(account, 2000, clock.now)
    quote(engine, clock, "EURUSD", "1.08500", "1.08510")
    result = engine.place_order(account, market("EURUSD", BUY, "1"), clock.now)
    assert result.position is not None
    assert result.position.leverage == 2000
    assert result.position.margin == D("54.26")  # 1 x 100000 x 1.0851 / 2000 = 54.255 -> up
    quote(engine, clock, "BTCUSD", "65000", "65010")
    # Crypto caps at 1:400 even though the account allows 1:2000.
    btc = engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)
    assert btc.position is not None
    assert btc.position.leverage == 400


def test_size_from_margin_and_leverage_rounds_down_to_step() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    req = OrderRequest("BTCUSD", BUY, OrderType.MARKET, margin=D("100"), leverage=100)
    result = engine.place_order(account, req, clock.now)
    # 100 x 100 / 65010 = 0.1538... -> 0.15 lots
    assert result.order.volume == D("0.15")
    assert result.order.leverage == 100


def test_insufficient_margin_refused_and_nothing_changes() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock, amount="100")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    events(engine)
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)  # needs 650.10
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_MARGIN")
    assert account.positions == {}
    assert account.margin == 0
    assert events(engine) == []


def test_spread_cost_counts_in_the_margin_check() -> None:
    """Free margin would cover the margin alone, but not margin plus the spread just paid."""
    engine, clock = new_engine()
    account = funded(engine, clock, amount="650.50")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    with pytest.raises(Refusal) as exc:  # margin 650.10 + spread 10 > 650.50
        engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_MARGIN")


@pytest.mark.parametrize(
    ("volume", "why"),
    [
        ("0.001", "minimum"),
        ("100.01", "maximum"),
        ("0.015", "multiple"),
    ],
)
def test_bad_volume_names_the_field(volume: str, why: str) -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("BTCUSD", BUY, volume), clock.now)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VOLUME", "volume")
    assert why in refusal_error(exc.value).violations[0].description


def test_bad_size_combinations_and_leverage() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    cases: list[tuple[OrderRequest, str, str]] = [
        (OrderRequest("BTCUSD", BUY, OrderType.MARKET), "volume", "INVALID_ARGUMENT"),
        (
            OrderRequest("BTCUSD", BUY, OrderType.MARKET, volume=D(1), margin=D(10)),
            "margin",
            "INVALID_ARGUMENT",
        ),
        (
            OrderRequest("BTCUSD", BUY, OrderType.MARKET, margin=D("1"), leverage=100),
            "margin",
            "INVALID_VOLUME",
        ),
        (market("BTCUSD", BUY, "0.01", leverage=500), "leverage", "INVALID_LEVERAGE"),
        (market("BTCUSD", BUY, "0.01", price=D("65000")), "price", "INVALID_ARGUMENT"),
        (
            market("BTCUSD", BUY, "0.01", stop_loss=D("64000.123")),
            "stop_loss",
            "INVALID_PRICE_LEVEL",
        ),
    ]
    for req, field, reason in cases:
        with pytest.raises(Refusal) as exc:
            engine.place_order(account, req, clock.now)
        refused(exc, grpc.StatusCode.INVALID_ARGUMENT, reason, field)
    engine.set_leverage(account, 50, clock.now)
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("BTCUSD", BUY, "0.01", leverage=100), clock.now)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LEVERAGE", "leverage")
    with pytest.raises(Refusal) as exc:
        engine.set_leverage(account, 2001, clock.now)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LEVERAGE", "leverage")
    assert account.positions == {}


def test_unknown_symbol_and_missing_quote() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("DOGEUSD", BUY, "1"), clock.now)
    refused(exc, grpc.StatusCode.NOT_FOUND, "UNKNOWN_SYMBOL")
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)
    refused(exc, grpc.StatusCode.UNAVAILABLE, "NO_QUOTE")


def test_stale_quote_refuses_market_and_pending_orders_and_closes() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    opened = engine.place_order(account, market("BTCUSD", BUY, "0.01"), clock.now)
    assert opened.position is not None
    clock.tick(10.5)  # older than max_quote_age (10 s), measured from the quote's own time
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("BTCUSD", BUY, "0.01"), clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "STALE_QUOTE")
    with pytest.raises(Refusal) as exc:
        engine.close_position(account, opened.position.position_id, None, clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "STALE_QUOTE")
    # A pending order is judged against the quote too (issue 15 item 6): refused alike, and
    # nothing is booked.
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, pending("BTCUSD", BUY, LIMIT, "0.01", "60000"), clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "STALE_QUOTE")
    assert account.orders == {}
    # A quote stamped in the past is stale even if it just arrived.
    now = clock.tick()
    engine.on_quote("BTCUSD", D("65000"), D("65010"), now - timedelta(seconds=30), now)
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("BTCUSD", BUY, "0.01"), clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "STALE_QUOTE")


# ------------------------------------------------------------------ pending orders


@pytest.mark.parametrize(
    ("side", "type_", "bad", "good", "cross_bid", "cross_ask", "fill"),
    [
        # BUY LIMIT below the ask, fills when ask <= price (gap: at the crossing ask)
        (BUY, LIMIT, "65010", "64000", "63400", "63410", "63410"),
        # SELL LIMIT above the bid, fills when bid >= price
        (SELL, LIMIT, "65000", "66000", "66500", "66510", "66500"),
        # BUY STOP above the ask, fills when ask >= price
        (BUY, STOP, "65010", "66000", "66600", "66610", "66610"),
        # SELL STOP below the bid, fills when bid <= price
        (SELL, STOP, "65000", "64000", "63000", "63010", "63000"),
    ],
)
def test_pending_order_sides_triggers_and_gap_fills(
    side: Side, type_: OrderType, bad: str, good: str, cross_bid: str, cross_ask: str, fill: str
) -> None:
    engine, clock = new_engine()
    account = funded(engine, clock, amount="100000")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, pending("BTCUSD", side, type_, "0.10", bad), clock.now)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PRICE_LEVEL", "price")
    placed = engine.place_order(account, pending("BTCUSD", side, type_, "0.10", good), clock.now)
    order_id = placed.order.order_id
    assert placed.order.status is OrderStatus.PENDING
    assert placed.position is None
    # A move the wrong way does not trigger it.
    wrong = D(good) + (D(500) if (side is BUY) == (type_ is LIMIT) else D(-500))
    quote(engine, clock, "BTCUSD", str(wrong - 5), str(wrong + 5))
    assert order_id in account.orders
    assert account.positions == {}
    events(engine)
    quote(engine, clock, "BTCUSD", cross_bid, cross_ask)
    assert order_id not in account.orders
    [position] = account.positions.values()
    assert position.open_price == D(fill)  # the quote that crossed, not the order price
    assert position.order_id == order_id
    kinds = [e.type for e in events(engine)]
    assert kinds == [EventType.ORDER_FILLED, EventType.POSITION_OPENED]


def test_triggered_order_without_margin_is_rejected_as_an_event() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock, amount="1000")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    engine.place_order(account, pending("BTCUSD", BUY, LIMIT, "1", "64000"), clock.now)
    events(engine)
    quote(engine, clock, "BTCUSD", "63990", "64000")  # needs 640.00 margin: fine
    assert len(account.positions) == 1
    engine.place_order(account, pending("BTCUSD", BUY, LIMIT, "0.5", "63900"), clock.now)
    events(engine)
    # equity 890, margin 640: free 250 < 319.50 needed
    quote(engine, clock, "BTCUSD", "63890", "63900")
    rejected = [e for e in events(engine) if e.type is EventType.ORDER_REJECTED]
    assert len(rejected) == 1
    assert rejected[0].order is not None
    assert rejected[0].order.status is OrderStatus.REJECTED
    assert rejected[0].order.reject_reason == "INSUFFICIENT_MARGIN"
    assert len(account.positions) == 1
    assert account.orders == {}


def test_cancel_and_expiry() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    a = engine.place_order(account, pending("BTCUSD", BUY, LIMIT, "0.01", "60000"), clock.now)
    b = engine.place_order(
        account,
        pending("BTCUSD", BUY, LIMIT, "0.01", "60000", expire_at=clock.now + timedelta(seconds=5)),
        clock.now,
    )
    with pytest.raises(Refusal) as exc:
        engine.place_order(
            account, pending("BTCUSD", BUY, LIMIT, "0.01", "60000", expire_at=clock.now), clock.now
        )
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "expire_time")
    cancelled = engine.cancel_order(account, a.order.order_id, clock.now)
    assert cancelled.status is OrderStatus.CANCELLED
    with pytest.raises(Refusal) as exc:
        engine.cancel_order(account, a.order.order_id, clock.now)
    refused(exc, grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND")
    events(engine)
    engine.expire(clock.tick(6))
    assert account.orders == {}
    [expired] = events(engine)
    assert expired.type is EventType.ORDER_EXPIRED
    assert expired.order is not None
    assert expired.order.order_id == b.order.order_id
    quote(engine, clock, "BTCUSD", "59000", "59010")  # neither fills any more
    assert account.positions == {}


# ------------------------------------------------------------------ SL / TP


def test_pending_orders_per_account_are_capped() -> None:
    engine = Engine(instruments(), max_pending_orders=3)
    clock = Clock()
    quote(engine, clock, "BTCUSD", "65000", "65010")
    account = funded(engine, clock)
    placed = [
        engine.place_order(account, pending("BTCUSD", BUY, LIMIT, "0.01", p), clock.now)
        for p in ("60000", "60001", "60002")
    ]
    events(engine)
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, pending("BTCUSD", SELL, STOP, "0.01", "60000"), clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "PENDING_ORDER_LIMIT")
    assert exc.value.metadata == {"limit": "3"}
    assert events(engine) == []  # refused: nothing changed
    assert len(engine.pending_orders(account)) == 3
    # Market orders are not limited; a cancelled order frees a place.
    assert engine.place_order(account, market("BTCUSD", BUY, "0.01"), clock.now).position
    engine.cancel_order(account, placed[0].order.order_id, clock.now)
    engine.place_order(account, pending("BTCUSD", SELL, STOP, "0.01", "60000"), clock.now)
    assert len(engine.pending_orders(account)) == 3


@pytest.mark.parametrize(
    ("side", "sl", "tp", "move_bid", "reason", "close_at"),
    [
        (BUY, "64000", "66000", "63500", CloseReason.STOP_LOSS, "63500"),  # bid <= SL, gapped
        (BUY, "64000", "66000", "66700", CloseReason.TAKE_PROFIT, "66700"),  # bid >= TP
        (SELL, "66000", "64000", "66300", CloseReason.STOP_LOSS, "66310"),  # ask >= SL
        (SELL, "66000", "64000", "63000", CloseReason.TAKE_PROFIT, "63010"),  # ask <= TP
    ],
)
def test_sl_tp_trigger_on_the_right_side_and_fill_at_the_crossing_quote(
    side: Side, sl: str, tp: str, move_bid: str, reason: CloseReason, close_at: str
) -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    opened = engine.place_order(
        account, market("BTCUSD", side, "0.10", stop_loss=D(sl), take_profit=D(tp)), clock.now
    )
    assert opened.position is not None
    # Inside the band nothing happens.
    quote(engine, clock, "BTCUSD", "65500", "65510")
    quote(engine, clock, "BTCUSD", "64500", "64510")
    assert len(account.positions) == 1
    events(engine)
    quote(engine, clock, "BTCUSD", move_bid, str(D(move_bid) + 10))
    assert account.positions == {}
    out = events(engine)
    closed = [e for e in out if e.type is EventType.POSITION_CLOSED]
    assert len(closed) == 1
    assert closed[0].trade is not None
    trade = closed[0].trade
    assert trade.close_reason is reason
    assert trade.close_price == D(close_at)
    sign = 1 if side is BUY else -1
    assert trade.realized_pnl == (D(close_at) - opened.position.open_price) * D("0.10") * sign
    assert account.balance == D(10000) + trade.realized_pnl


@pytest.mark.parametrize(
    ("side", "field", "level"),
    [
        (BUY, "stop_loss", "65000"),  # not below the bid
        (BUY, "take_profit", "64990"),  # not above the bid
        (SELL, "stop_loss", "65010"),  # not above the ask
        (SELL, "take_profit", "65020"),  # not below the ask
    ],
)
def test_sl_tp_on_the_wrong_side_are_refused(side: Side, field: str, level: str) -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("BTCUSD", side, "0.1", **{field: D(level)}), clock.now)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PRICE_LEVEL", field)
    opened = engine.place_order(account, market("BTCUSD", side, "0.1"), clock.now)
    assert opened.position is not None
    kwargs = {"stop_loss": None, "take_profit": None, field: D(level)}
    with pytest.raises(Refusal) as exc:
        engine.modify_position(account, opened.position.position_id, now=clock.now, **kwargs)
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PRICE_LEVEL", field)


def test_pending_order_levels_are_judged_against_its_price() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    with pytest.raises(Refusal) as exc:  # SL of a BUY LIMIT at 60000 must be below 60000
        engine.place_order(
            account, pending("BTCUSD", BUY, LIMIT, "0.1", "60000", stop_loss=D("61000")), clock.now
        )
    refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PRICE_LEVEL", "stop_loss")
    engine.place_order(
        account,
        pending("BTCUSD", BUY, LIMIT, "0.1", "60000", stop_loss=D("59000"), take_profit=D("62000")),
        clock.now,
    )
    quote(engine, clock, "BTCUSD", "59990", "60000")  # fills
    [position] = account.positions.values()
    assert (position.stop_loss, position.take_profit) == (D("59000"), D("62000"))
    quote(engine, clock, "BTCUSD", "62000", "62010")  # TP on the bid
    assert account.positions == {}


def test_modify_position_moves_and_clears_levels() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    opened = engine.place_order(
        account, market("BTCUSD", BUY, "0.1", stop_loss=D("64000")), clock.now
    )
    assert opened.position is not None
    pid = opened.position.position_id
    modified = engine.modify_position(account, pid, D("63000"), D("70000"), clock.now)
    assert (modified.stop_loss, modified.take_profit) == (D("63000"), D("70000"))
    quote(engine, clock, "BTCUSD", "63500", "63510")  # the old SL would have fired here
    assert pid in account.positions
    engine.modify_position(account, pid, None, None, clock.now)
    quote(engine, clock, "BTCUSD", "62000", "62010")
    quote(engine, clock, "BTCUSD", "71000", "71010")
    assert pid in account.positions
    with pytest.raises(Refusal) as exc:
        engine.modify_position(account, pid + 999, None, None, clock.now)
    refused(exc, grpc.StatusCode.NOT_FOUND, "POSITION_NOT_FOUND")


# ------------------------------------------------------------------ closing


def test_partial_close_realises_pnl_and_keeps_the_rest() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    opened = engine.place_order(account, market("BTCUSD", BUY, "0.30"), clock.now)
    assert opened.position is not None
    pid = opened.position.position_id
    quote(engine, clock, "BTCUSD", "66010", "66020")
    for volume, reason in (
        ("0.31", "above the open volume"),
        ("0.015", "multiple"),
        ("0.295", "multiple"),
    ):
        with pytest.raises(Refusal) as exc:
            engine.close_position(account, pid, D(volume), clock.now)
        refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VOLUME", "volume")
        assert reason in refusal_error(exc.value).violations[0].description
    result = engine.close_position(account, pid, D("0.10"), clock.now)
    assert result.trade.volume == D("0.10")
    assert result.trade.close_price == D("66010")
    assert result.trade.realized_pnl == D("100.00")
    assert result.position is not None
    assert result.position.volume == D("0.20")
    assert result.position.margin == D("130.02")  # 0.2 x 65010 / 100
    assert account.margin == D("130.02")
    assert account.balance == D("10100.00")
    final = engine.close_position(account, pid, None, clock.now)
    assert final.position is None
    assert final.trade.realized_pnl == D("200.00")
    assert account.balance == D("10300.00")
    assert account.margin == 0
    assert account.positions == {}


# ------------------------------------------------------------------ risk


def test_margin_call_event_once_at_60_percent() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock, amount="1000")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)  # margin 650.10
    events(engine)
    quote(engine, clock, "BTCUSD", "64400", "64410")  # equity 390 = 59.99 %
    assert account.margin_call
    first = [e.type for e in events(engine)]
    assert first == [EventType.MARGIN_CALL]
    quote(engine, clock, "BTCUSD", "64300", "64310")  # still in margin call: no new event
    assert [e.type for e in events(engine)] == []
    quote(engine, clock, "BTCUSD", "65000", "65010")  # recovered
    assert not account.margin_call
    quote(engine, clock, "BTCUSD", "64400", "64410")
    assert [e.type for e in events(engine)] == [EventType.MARGIN_CALL]


def test_stop_out_closes_the_least_profitable_first_and_stops_above_the_level() -> None:
    groups = {s: replace(i, stop_out_level=D(50)) for s, i in instruments().items()}
    engine = Engine(groups)
    from tests.trading.support import Clock

    clock = Clock()
    account = funded(engine, clock, amount="1000")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    quote(engine, clock, "ETHUSD", "3200", "3201")
    engine.place_order(account, market("BTCUSD", BUY, "0.10"), clock.now)  # margin 65.01
    engine.place_order(account, market("ETHUSD", BUY, "1"), clock.now)  # margin 32.01
    events(engine)
    quote(engine, clock, "BTCUSD", "55320", "55330")  # equity 30 <= 50 % of 97.02
    out = events(engine)
    stop_outs = [e for e in out if e.type is EventType.STOP_OUT]
    assert len(stop_outs) == 1
    assert stop_outs[0].trade is not None
    assert stop_outs[0].trade.symbol == "BTCUSD"  # the larger loss went first
    assert stop_outs[0].trade.close_reason is CloseReason.STOP_OUT
    assert stop_outs[0].trade.realized_pnl == D("-969.00")
    [left] = account.positions.values()
    assert left.symbol == "ETHUSD"  # 30 / 32.01 = 93.7 %: above the stop-out level again
    assert account.balance == D("31.00")


def test_stop_out_then_negative_balance_protection() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock, amount="1000")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    quote(engine, clock, "ETHUSD", "3200", "3201")
    engine.place_order(account, market("BTCUSD", BUY, "1"), clock.now)
    engine.place_order(account, market("ETHUSD", SELL, "1"), clock.now)
    all_events = events(engine)
    quote(engine, clock, "BTCUSD", "60000", "60010")  # gap: equity far below zero
    out = events(engine)
    all_events += out
    assert account.positions == {}
    stop_outs = [e.trade for e in out if e.type is EventType.STOP_OUT and e.trade]
    assert [t.symbol for t in stop_outs] == ["BTCUSD", "ETHUSD"]  # least profitable first
    resets = [
        e.ledger for e in out if e.ledger and e.ledger.kind is LedgerKind.NEGATIVE_BALANCE_RESET
    ]
    assert len(resets) == 1
    assert resets[0].amount == D("4011.00")
    assert account.balance == 0
    assert ledger_sum(engine, account.account_id, all_events) == account.balance


# ------------------------------------------------------------------ idempotency


def test_client_order_id_retry_returns_the_first_result() -> None:
    engine, clock = new_engine()
    account = funded(engine, clock)
    quote(engine, clock, "BTCUSD", "65000", "65010")
    req = market("BTCUSD", BUY, "0.10", client_order_id="abc-1")
    first = engine.place_order(account, req, clock.now)
    again = engine.place_order(account, req, clock.tick())
    assert again.duplicate
    assert again.order.order_id == first.order.order_id
    assert len(account.positions) == 1
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, replace(req, volume=D("0.20")), clock.now)
    refused(exc, grpc.StatusCode.FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED")
    other = engine.account_of("bob", clock.now)
    engine.deposit(other, D(1000), clock.now)
    theirs = engine.place_order(other, req, clock.now)  # keys are per account
    assert not theirs.duplicate
    assert theirs.order.order_id != first.order.order_id


def test_deposit_limits_and_ledger() -> None:
    engine, clock = new_engine()
    account = engine.account_of("carol", clock.now)
    for amount in ("0", "-5", "0.001", "1000000.01"):
        with pytest.raises(Refusal) as exc:
            engine.deposit(account, D(amount), clock.now)
        refused(exc, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "amount")
    entry = engine.deposit(account, D("1000000"), clock.now)
    assert entry.kind is LedgerKind.DEPOSIT
    assert entry.balance_after == D("1000000")


def test_stop_loss_filled_past_zero_equity_gets_negative_balance_protection() -> None:
    """A gap through the SL (which fires before the margin watch) loses more than the balance:
    the account ends flat at zero, as after a stop-out (found by the property test)."""
    engine, clock = new_engine()
    account = funded(engine, clock, amount="1000")
    quote(engine, clock, "BTCUSD", "65000", "65010")
    engine.place_order(account, market("BTCUSD", BUY, "1", stop_loss=D("64000")), clock.now)
    all_events = events(engine)
    quote(engine, clock, "BTCUSD", "63000", "63010")  # gap through the SL: -2010 on 1000
    out = events(engine)
    all_events += out
    assert account.positions == {}
    closes = [e.trade for e in out if e.trade]
    assert [t.close_reason for t in closes] == [CloseReason.STOP_LOSS]
    resets = [
        e.ledger for e in out if e.ledger and e.ledger.kind is LedgerKind.NEGATIVE_BALANCE_RESET
    ]
    assert len(resets) == 1
    assert resets[0].amount == D("1010.00")
    assert account.balance == 0
    assert ledger_sum(engine, account.account_id, all_events) == account.balance


# ------------------------------------------------------------------ purity of the core


def test_the_engine_core_imports_no_wire_code() -> None:
    code = (
        "import sys, services.trading.engine; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'grpc', 'exness', 'psycopg', 'psycopg_pool', 'aiokafka'}))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_engine_leaves_the_threads_decimal_context_alone() -> None:
    before = decimal.getcontext().prec
    engine, clock = new_engine()
    quote(engine, clock, "BTCUSD", "65000", "65010")
    account = funded(engine, clock)
    engine.place_order(account, market("BTCUSD", BUY, "0.01"), clock.now)
    assert decimal.getcontext().prec == before
