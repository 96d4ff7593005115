"""Trading sessions (docs/trading-rules.md): forex and metals close from Friday 21:00 to Sunday
21:05 (metals 22:05) UTC, crypto never. Outside a session market orders and closes are refused
MARKET_CLOSED; pending orders may wait, and nothing fires on a closed market's quotes until the
first quote after the open."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from kit.data.sessions import is_open, next_open
from kit.refusal import Refusal
from kit.rpc.errors import refusal_error
from services.market.servicer import instrument_message
from services.trading.engine import Engine
from services.trading.model import CloseReason, Event, EventType, OrderType, Side
from tests.trading.support import SESSIONS, Clock, D, instruments, market, pending

BUY, SELL = Side.BUY, Side.SELL
FRIDAY = datetime(2025, 1, 10, 20, 0, tzinfo=UTC)
SATURDAY = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)
SUNDAY_OPEN = datetime(2025, 1, 12, 21, 5, tzinfo=UTC)


def at(engine: Engine, when: datetime, symbol: str, bid: str, ask: str) -> None:
    engine.on_quote(symbol, D(bid), D(ask), when, when)


def closed_refusal(exc: pytest.ExceptionInfo[Refusal], opens_at: str) -> None:
    error = refusal_error(exc.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "MARKET_CLOSED"
    assert exc.value.metadata["opens_at"] == opens_at


def test_the_weekly_windows() -> None:
    forex, metal = SESSIONS["forex"], SESSIONS["metal"]
    assert is_open(forex, datetime(2025, 1, 10, 20, 59, 59, tzinfo=UTC))
    assert not is_open(forex, datetime(2025, 1, 10, 21, 0, tzinfo=UTC))
    assert not is_open(forex, datetime(2025, 1, 12, 21, 4, 59, tzinfo=UTC))
    assert is_open(forex, SUNDAY_OPEN)
    assert is_open(forex, datetime(2025, 1, 8, 3, 0, tzinfo=UTC))  # Wednesday night
    assert not is_open(metal, datetime(2025, 1, 12, 21, 30, tzinfo=UTC))
    assert next_open(metal, datetime(2025, 1, 12, 21, 30, tzinfo=UTC)) == datetime(
        2025, 1, 12, 22, 5, tzinfo=UTC
    )
    assert next_open(forex, SATURDAY) == SUNDAY_OPEN
    assert is_open(SESSIONS["crypto"], SATURDAY)


def test_weekend_forex_refused_crypto_trades() -> None:
    engine, clock = Engine(instruments()), Clock()
    clock.now = SATURDAY
    account = engine.account_of("alice", SATURDAY)
    engine.deposit(account, D(10000), SATURDAY)
    at(engine, SATURDAY, "EURUSD", "1.08500", "1.08510")
    at(engine, SATURDAY, "BTCUSD", "65000", "65010")
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("EURUSD", BUY, "1"), SATURDAY)
    closed_refusal(exc, "2025-01-12T21:05:00+00:00")
    with pytest.raises(Refusal) as exc:
        engine.place_order(account, market("XAUUSD", BUY, "1"), SATURDAY)
    closed_refusal(exc, "2025-01-12T22:05:00+00:00")
    assert account.positions == {}
    btc = engine.place_order(account, market("BTCUSD", BUY, "0.10"), SATURDAY)
    assert btc.position is not None
    assert btc.position.open_price == D("65010")


def test_levels_and_pending_orders_wait_for_the_open() -> None:
    engine = Engine(instruments())
    account = engine.account_of("bob", FRIDAY)
    engine.deposit(account, D(10000), FRIDAY)
    at(engine, FRIDAY, "EURUSD", "1.08500", "1.08510")
    opened = engine.place_order(
        account, market("EURUSD", BUY, "1", stop_loss=D("1.08000")), FRIDAY
    ).position
    assert opened is not None
    engine.hand_over()

    # Saturday: a pending order may be placed (and cancelled), the position may not be closed.
    at(engine, SATURDAY, "EURUSD", "1.08400", "1.08410")
    limit = engine.place_order(
        account, pending("EURUSD", BUY, OrderType.LIMIT, "1", "1.08300"), SATURDAY
    ).order
    with pytest.raises(Refusal) as exc:
        engine.close_position(account, opened.position_id, None, SATURDAY)
    closed_refusal(exc, "2025-01-12T21:05:00+00:00")
    engine.hand_over()
    # A weekend quote through the stop-loss and the limit price fires neither.
    later = SATURDAY + timedelta(hours=1)
    at(engine, later, "EURUSD", "1.07900", "1.07910")
    assert engine.open_position(account, opened.position_id) is not None
    assert engine.has_pending_order(account, limit.order_id)
    assert [e for e in engine.hand_over().items if isinstance(e, Event)] == []

    # The first quote after the open fires both, at that quote.
    at(engine, SUNDAY_OPEN, "EURUSD", "1.07950", "1.07960")
    assert engine.open_position(account, opened.position_id) is None
    assert not engine.has_pending_order(account, limit.order_id)
    out = [e for e in engine.hand_over().items if isinstance(e, Event)]
    [trade] = [e.trade for e in out if e.type is EventType.POSITION_CLOSED and e.trade]
    assert trade.close_reason is CloseReason.STOP_LOSS
    assert trade.close_price == D("1.07950")
    assert trade.realized_pnl == D("-560.00")  # 100000 x (1.07950 - 1.08510)
    [fill] = [e.order for e in out if e.type is EventType.ORDER_FILLED and e.order]
    assert fill.fill_price == D("1.07960")


def test_no_stop_out_on_a_closed_market() -> None:
    groups = {s: replace(i, stop_out_level=D(50)) for s, i in instruments().items()}
    engine = Engine(groups)
    account = engine.account_of("carol", FRIDAY)
    engine.deposit(account, D(100), FRIDAY)
    at(engine, FRIDAY, "XAUUSD", "2400.00", "2400.20")
    engine.set_leverage(account, 2000, FRIDAY)
    engine.place_order(account, market("XAUUSD", BUY, "0.5"), FRIDAY)  # margin 60.02
    at(engine, SATURDAY, "XAUUSD", "2398.50", "2398.70")  # equity 15 = 25 %: but closed
    assert len(account.positions) == 1
    assert engine.view(account).equity == D("15")
    at(engine, datetime(2025, 1, 12, 22, 5, tzinfo=UTC), "XAUUSD", "2398.50", "2398.70")
    assert account.positions == {}  # stopped out on the first quote after the open
    assert account.balance == D("15.00")


def test_list_instruments_shows_the_sessions() -> None:
    message = instrument_message(instruments()["XAUUSD"])
    [session] = message.sessions
    assert (session.open_weekday, session.open_time) == (7, "22:05")
    assert (session.close_weekday, session.close_time) == (5, "21:00")
    assert list(instrument_message(instruments()["BTCUSD"]).sessions) == []
