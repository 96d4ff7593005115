"""Stale prices are visible: a symbol whose feed stops is greyed with its age and cannot be
traded from the ticket within the maximum quote age, while the others trade on; the connection
pill says so."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.platform import Platform
from tests.web.terminal import Terminal

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The engine's default EXNESS_MAX_QUOTE_AGE, which the web platform runs with.
MAX_QUOTE_AGE_S = 10.0
# One clock tick of the terminal plus this test's polling.
SLACK_S = 2.5


def test_a_stalled_feed_greys_the_symbol_and_pauses_its_trading(
    page: Page, platform: Platform, artifacts_dir: Path
) -> None:
    assert platform.feed is not None
    t = Terminal(page)
    t.new_trader(deposit="1000")
    t.select("SOLUSD")
    row = t.tid("instrument-SOLUSD")
    expect(row).to_have_attribute("data-fresh", "fresh")
    expect(t.tid("ticket-submit")).to_be_enabled()

    platform.feed.pause("SOLUSD")
    try:
        stopped = time.monotonic()
        expect(row).to_have_attribute("data-fresh", "stale", timeout=20_000)
        took = time.monotonic() - stopped
        assert took <= MAX_QUOTE_AGE_S + SLACK_S, f"greyed only after {took:.1f}s"
        expect(t.tid("age-SOLUSD")).to_be_visible()
        expect(t.tid("age-SOLUSD")).to_have_text(re.compile(r"^1\d s old$"))
        # The ticket refuses to trade on it, and says why.
        expect(t.tid("ticket-side-buy")).to_be_disabled()
        expect(t.tid("ticket-side-sell")).to_be_disabled()
        expect(t.tid("ticket-submit")).to_be_disabled()
        expect(t.tid("ticket-stale")).to_contain_text("The SOLUSD price is")
        expect(t.tid("ticket-stale")).to_contain_text("trading is paused")
        # The pill: the streams are up, but not every price is fresh.
        conn = t.tid("conn-status")
        expect(conn).to_have_attribute("data-state", "stale")
        expect(conn).to_have_attribute("data-stale", "SOLUSD")
        expect(conn).to_contain_text("1 stale")
        page.screenshot(path=str(artifacts_dir / "web-stale-quote.png"))

        # Every other symbol trades on.
        expect(t.tid("instrument-BTCUSD")).to_have_attribute("data-fresh", "fresh")
        t.select("BTCUSD")
        expect(t.tid("ticket-submit")).to_be_enabled()
        expect(t.tid("ticket-stale")).to_be_hidden()
    finally:
        platform.feed.resume("SOLUSD")

    # Prices again: fresh, tradable, the pill back to live.
    expect(row).to_have_attribute("data-fresh", "fresh", timeout=10_000)
    t.select("SOLUSD")
    expect(t.tid("ticket-submit")).to_be_enabled()
    expect(t.tid("conn-status")).to_have_attribute("data-state", "live")
