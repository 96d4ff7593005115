"""Shared helpers of the trading tests: the instruments of migrations/0100_instruments.sql as
engine objects, and a clock for the pure engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kit.data.instruments import Instrument
from kit.data.sessions import TradingSession
from services.trading.engine import Engine, OrderRequest
from services.trading.model import Account, OrderType, Side

D = Decimal
T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def instruments() -> dict[str, Instrument]:
    rows = [
        ("BTCUSD", "crypto", 2, "1", "0.01", "0.01", "100", 400),
        ("ETHUSD", "crypto", 2, "1", "0.01", "0.01", "1000", 400),
        ("SOLUSD", "crypto", 3, "1", "0.1", "0.1", "10000", 400),
        ("EURUSD", "forex", 5, "100000", "0.01", "0.01", "200", 2000),
        ("XAUUSD", "metal", 2, "100", "0.01", "0.01", "200", 2000),
    ]
    return {
        s: Instrument(
            s, c, p, D(cs), D(vmin), D(step), D(vmax), lev, D(60), D(0), sessions=SESSIONS[c]
        )
        for s, c, p, cs, vmin, step, vmax, lev in rows
    }


# As migrations/0311_trading_sessions.sql seeds them: Sunday 21:05 (metals 22:05) to Friday 21:00.
SESSIONS = {
    "crypto": (),
    "forex": (TradingSession(7, 21 * 60 + 5, 5, 21 * 60),),
    "metal": (TradingSession(7, 22 * 60 + 5, 5, 21 * 60),),
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def tick(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def new_engine() -> tuple[Engine, Clock]:
    return Engine(instruments(), max_quote_age=timedelta(seconds=10)), Clock()


def quote(engine: Engine, clock: Clock, symbol: str, bid: str, ask: str) -> None:
    now = clock.tick()
    engine.on_quote(symbol, D(bid), D(ask), now, now)


def funded(engine: Engine, clock: Clock, user: str = "alice", amount: str = "10000") -> Account:
    account = engine.account_of(user, clock.now)
    engine.deposit(account, D(amount), clock.now)
    return account


def market(symbol: str, side: Side, volume: str, **kw: object) -> OrderRequest:
    return OrderRequest(symbol, side, OrderType.MARKET, volume=D(volume), **kw)  # type: ignore[arg-type]


def pending(
    symbol: str, side: Side, type: OrderType, volume: str, price: str, **kw: object
) -> OrderRequest:
    return OrderRequest(symbol, side, type, volume=D(volume), price=D(price), **kw)  # type: ignore[arg-type]
