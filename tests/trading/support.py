"""Shared helpers of the trading tests: the instruments of migrations/0100_instruments.sql as
engine objects, and a clock for the pure engine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kit.data.account_types import AccountType, Terms
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


def account_types() -> dict[str, AccountType]:
    """The account types of migrations/0300_account_types.sql as engine objects."""
    markups = {
        "pro": {"BTCUSD": "5.00", "ETHUSD": "0.50", "SOLUSD": "0.020", "EURUSD": "0.00004"},
        "raw_spread": dict.fromkeys(("BTCUSD", "ETHUSD", "SOLUSD", "EURUSD", "XAUUSD"), "0"),
        "zero": dict.fromkeys(("BTCUSD", "ETHUSD", "SOLUSD", "EURUSD", "XAUUSD"), "0"),
    }
    markups["pro"]["XAUUSD"] = "0.10"
    crypto = {"BTCUSD": "3.25", "ETHUSD": "0.16", "SOLUSD": "0.01"}
    commissions = {
        "raw_spread": {**crypto, "EURUSD": "3.50", "XAUUSD": "3.50"},
        "zero": {**crypto, "EURUSD": "3.50", "XAUUSD": "5.00"},
    }
    levels = {"standard": (60, "Standard"), "pro": (30, "Pro")}
    levels |= {"raw_spread": (30, "Raw Spread"), "zero": (30, "Zero")}
    types = {}
    for name, (margin_call, display) in levels.items():
        terms = {
            symbol: Terms(
                D(markups[name][symbol]) if name in markups else None,
                D(commissions.get(name, {}).get(symbol, "0")),
            )
            for symbol in instruments()
        }
        types[name] = AccountType(name, display, D(margin_call), D(0), 2000, terms)
    return types


def typed_engine() -> tuple[Engine, Clock]:
    """An engine with the seeded account types and the seeded default markups (which the
    published quotes carry)."""
    markup = {"BTCUSD": "10.00", "ETHUSD": "1.00", "SOLUSD": "0.050", "EURUSD": "0.00010"}
    markup["XAUUSD"] = "0.20"
    specs = {s: replace(i, spread_markup=D(markup[s])) for s, i in instruments().items()}
    engine = Engine(specs, max_quote_age=timedelta(seconds=10), account_types=account_types())
    return engine, Clock()
