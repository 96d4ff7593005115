"""Market hours on their own (services/trading/market_hours.py), without an engine: forex and
metals trade inside their weekly sessions, crypto always, every instrument when sessions are not
enforced; outside a session the refusal is MARKET_CLOSED with the symbol and when it opens."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kit.refusal import Refusal, RefusalKind
from services.trading.market_hours import check_trading, is_trading
from tests.trading.support import instruments

SPECS = instruments()
SATURDAY = datetime(2025, 1, 11, 12, 0, tzinfo=UTC)
WEDNESDAY = datetime(2025, 1, 8, 12, 0, tzinfo=UTC)
SUNDAY_2130 = datetime(2025, 1, 12, 21, 30, tzinfo=UTC)  # forex open, metals not until 22:05


def test_a_weekend_closes_forex_and_metals_not_crypto() -> None:
    assert not is_trading(SPECS["EURUSD"], SATURDAY, True)
    assert not is_trading(SPECS["XAUUSD"], SATURDAY, True)
    assert is_trading(SPECS["BTCUSD"], SATURDAY, True)
    assert is_trading(SPECS["EURUSD"], WEDNESDAY, True)


def test_each_instrument_follows_its_own_sessions() -> None:
    assert is_trading(SPECS["EURUSD"], SUNDAY_2130, True)
    assert not is_trading(SPECS["XAUUSD"], SUNDAY_2130, True)


def test_sessions_not_enforced_trade_everything_at_any_hour() -> None:
    for symbol in ("EURUSD", "XAUUSD", "BTCUSD"):
        assert is_trading(SPECS[symbol], SATURDAY, False)
        check_trading(SPECS[symbol], SATURDAY, False)


def test_closed_market_is_refused_with_when_it_opens() -> None:
    with pytest.raises(Refusal) as refused:
        check_trading(SPECS["XAUUSD"], SUNDAY_2130, True)
    assert refused.value.kind is RefusalKind.PRECONDITION
    assert refused.value.reason == "MARKET_CLOSED"
    assert refused.value.metadata == {
        "symbol": "XAUUSD",
        "opens_at": "2025-01-12T22:05:00+00:00",
    }
    assert "XAUUSD" in refused.value.message
    check_trading(SPECS["EURUSD"], SUNDAY_2130, True)  # open: no refusal
