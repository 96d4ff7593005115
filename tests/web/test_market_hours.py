"""Trading sessions in the terminal: a forex or metal instrument outside its session is shown
closed, and the ticket is paused with the time it opens (in the browser's zone); crypto trades
around the clock. The browser's clock is set to a Saturday; the platform's is not touched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import BROWSER_TIMEZONE
from tests.web.platform import Platform
from tests.web.terminal import Terminal

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def last_saturday_noon() -> datetime:
    now = datetime.now(UTC)
    days_back = (now.isoweekday() - 6) % 7 or 7
    return (now - timedelta(days=days_back)).replace(hour=12, minute=0, second=0, microsecond=0)


def shown(at: datetime) -> str:
    """How the terminal writes an instant: minutes, in the browser's zone, the offset named."""
    local = at.astimezone(ZoneInfo(BROWSER_TIMEZONE))
    return f"{local:%Y-%m-%d %H:%M} (UTC+05:45)"


@pytest.fixture
def sessions_published(platform: Platform) -> Iterator[None]:
    """MarketData publishing the instruments' sessions, as on a platform that keeps them (the
    test platform trades around the clock and publishes none)."""
    platform.restart_service("market", EXNESS_TRADING_SESSIONS="on")
    yield
    platform.restart_service("market")


def test_a_platform_trading_around_the_clock_shows_nothing_closed(page: Page) -> None:
    saturday = last_saturday_noon()
    page.clock.set_fixed_time(saturday)
    page.reload()
    t = Terminal(page)
    t.new_trader(deposit=None)
    expect(t.tid("instrument-EURUSD")).to_have_attribute("data-market", "open")
    t.select("EURUSD")
    expect(t.tid("ticket-side-buy")).to_be_enabled()


def test_closed_market_pauses_the_ticket_until_it_opens(
    sessions_published: None, page: Page
) -> None:
    saturday = last_saturday_noon()
    page.clock.set_fixed_time(saturday)
    page.reload()
    t = Terminal(page)
    t.new_trader(deposit=None)
    sunday = saturday + timedelta(days=1)

    expect(t.tid("instrument-EURUSD")).to_have_attribute("data-market", "closed")
    expect(t.tid("closed-EURUSD")).to_be_visible()
    t.select("EURUSD")
    opens = sunday.replace(hour=21, minute=5)
    expect(t.tid("ticket-stale")).to_have_text(
        f"The EURUSD market is closed. It opens {shown(opens)}."
    )
    for button in ("ticket-side-buy", "ticket-side-sell", "ticket-submit"):
        expect(t.tid(button)).to_be_disabled()
    expect(t.tid("instrument-spec")).to_contain_text("Sun 21:05 – Fri 21:00")

    # Metals open an hour after forex.
    t.select("XAUUSD")
    opens = sunday.replace(hour=22, minute=5)
    expect(t.tid("ticket-stale")).to_have_text(
        f"The XAUUSD market is closed. It opens {shown(opens)}."
    )

    # Crypto trades at the weekend.
    expect(t.tid("instrument-BTCUSD")).to_have_attribute("data-market", "open")
    t.select("BTCUSD")
    expect(t.tid("ticket-stale")).to_be_hidden()
    expect(t.tid("ticket-submit")).to_be_enabled()
    expect(t.tid("instrument-spec")).to_contain_text("24/7")
