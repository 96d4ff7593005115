"""The web terminal in a real Chromium, against the real platform through Envoy (gRPC-Web)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.web.platform import Platform
from tests.web.terminal import PASSWORD, Terminal, fresh_email, number, wait_distinct, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_sign_up_log_out_and_log_in_with_errors_in_words(page: Page) -> None:
    t = Terminal(page)
    email = fresh_email()
    t.sign_up(email)
    t.expect_terminal()
    expect(t.tid("user-email")).to_have_text(email)

    t.tid("logout").click()
    expect(t.tid("auth-screen")).to_be_visible()
    # The same email again: the server's EMAIL_TAKEN, in words.
    t.sign_up(email)
    expect(t.tid("auth-error")).to_have_text("This email is already registered. Log in instead.")
    # A wrong password: INVALID_CREDENTIALS, in words.
    t.log_in(email, "wrong-password-1")
    expect(t.tid("auth-error")).to_have_text("Wrong email or password.")
    t.log_in(email)
    t.expect_terminal()
    expect(t.tid("user-email")).to_have_text(email)


def test_quotes_stream_flash_and_drive_the_chart(page: Page) -> None:
    t = Terminal(page)
    t.new_trader(deposit=None)
    first = wait_for(
        lambda: t.bid("BTCUSD") if t.bid("BTCUSD") != "—" else None, what="a first BTCUSD quote"
    )
    wait_for(lambda: t.bid("BTCUSD") != first, what="the BTCUSD bid to change")
    # A changed bid flashes its cell.
    wait_for(lambda: page.locator(".flash-up, .flash-down").count() > 0, what="a price flash")
    # Prices are shown with each instrument's decimals.
    assert len(t.bid("EURUSD").split(".")[1]) == 5
    assert len(t.bid("SOLUSD").split(".")[1]) == 3

    chart = t.tid("chart")
    expect(chart).to_have_attribute("data-state", "ready")
    wait_for(
        lambda: int(chart.get_attribute("data-candles") or 0) >= 1, what="candles from GetCandles"
    )
    # The forming candle follows the streamed bid.
    last = wait_for(lambda: chart.get_attribute("data-last-close"), what="a live candle update")
    wait_for(
        lambda: chart.get_attribute("data-last-close") != last, what="the forming candle to move"
    )

    t.tid("interval-5m").click()
    expect(t.tid("interval-5m")).to_have_attribute("aria-pressed", "true")
    expect(chart).to_have_attribute("data-state", "ready")
    t.select("ETHUSD")
    expect(chart).to_have_attribute("data-state", "ready")
    wait_for(lambda: int(chart.get_attribute("data-candles") or 0) >= 1, what="ETHUSD candles")


def test_pending_order_place_and_cancel(page: Page) -> None:
    t = Terminal(page)
    t.new_trader(deposit="10000")
    t.select("ETHUSD")
    bid = number(t.bid("ETHUSD"))
    limit = (bid * Decimal("0.8")).quantize(Decimal("0.01"))
    t.fill_ticket(side="buy", volume="0.50", order_type="Limit", price=str(limit))
    expect(t.tid("ticket-submit")).to_have_text("Buy limit 0.50 ETHUSD")
    # One-click trading, switched on by the trader: no confirmation.
    t.tid("one-click").check()
    t.submit_ticket(confirm=False)
    expect(t.tid("ticket-message")).to_contain_text("placed")
    expect(t.tid("confirm-dialog")).to_have_count(0)
    t.show_tab("orders")
    orders = page.locator("[data-testid=order-row]")
    expect(orders).to_have_count(1)
    expect(orders.first.get_by_test_id("order-type")).to_have_text("Buy Limit")
    expect(orders.first.get_by_test_id("order-price")).to_have_text(f"{limit:,.2f}")
    expect(t.tid("tab-orders")).to_contain_text("1")
    expect(t.position_rows()).to_have_count(0)

    orders.first.get_by_test_id("order-cancel").click()
    expect(orders).to_have_count(0)
    expect(t.tid("orders-empty")).to_be_visible()
    # It stays cancelled after a reload (it was the server that cancelled it).
    page.reload()
    t.expect_terminal()
    t.show_tab("orders")
    expect(t.tid("orders-empty")).to_be_visible()
    # The setting is the trader's until switched off again.
    expect(t.tid("one-click")).to_be_checked()


def test_order_larger_than_free_margin_is_refused_in_words(page: Page) -> None:
    t = Terminal(page)
    t.new_trader(deposit="100")
    t.select("XAUUSD")
    t.fill_ticket(side="sell", volume="50")
    expect(t.tid("ticket-required-margin")).to_have_class("num down")  # over free margin, in red
    t.submit_ticket()
    expect(t.tid("ticket-error")).to_contain_text("Not enough free margin")
    expect(t.position_rows()).to_have_count(0)
    assert t.balance() == Decimal("100")


def test_margin_call_warning_and_stop_out_in_history(page: Page, platform: Platform) -> None:
    assert platform.feed is not None
    t = Terminal(page)
    t.new_trader(deposit="500")
    t.select("XAUUSD")
    start = platform.feed.mid("XAUUSD")
    platform.feed.set_mid("XAUUSD", start)  # hold the price still while the position opens
    try:
        t.tid("ticket-leverage").select_option("100")
        t.fill_ticket(side="buy", volume="0.10")
        t.submit_ticket()
        expect(t.tid("ticket-message")).to_contain_text("Bought 0.10 XAUUSD")
        expect(t.position_rows()).to_have_count(1)
        expect(t.tid("margin-call-warning")).to_be_hidden()

        # Margin = 0.10 x 100 x ~start / 100; a 40 USD drop leaves equity near 100 USD,
        # well under the 60 % margin-call level.
        platform.feed.set_mid("XAUUSD", start - 40)
        # The quote travels feed -> MarketData -> broker -> stream: allow a loaded machine time.
        expect(t.tid("margin-call-warning")).to_be_visible(timeout=15_000)
        expect(t.tid("margin-call-text")).to_contain_text("stop out")

        # A 70 USD drop takes equity below zero: the broker closes the position.
        platform.feed.set_mid("XAUUSD", start - 70)
        expect(t.position_rows()).to_have_count(0, timeout=20_000)
        t.show_history("trades")
        trade = page.locator("[data-testid=trade-row]").first
        expect(trade.get_by_test_id("trade-reason")).to_have_text("Stop out")
        # Negative balance protection: the balance does not stay below zero.
        wait_for(lambda: (t.balance() or Decimal(0)) >= 0, what="a non-negative balance")
        expect(t.tid("margin-call-warning")).to_be_hidden()
    finally:
        platform.feed.set_mid("XAUUSD", start, freeze=False)


def test_streams_reconnect_after_envoy_and_market_restarts_without_reload(
    page: Page, platform: Platform, artifacts_dir: Path
) -> None:
    t = Terminal(page)
    t.new_trader(deposit="10000")
    page.evaluate("window.__sameDocument = true")
    token_before = page.evaluate("window.__terminal.session.accessToken")
    # Record every state the connection indicator and a price row show.
    page.evaluate("""() => {
        const el = document.querySelector('[data-testid=conn-status]');
        window.__connStates = [];
        new MutationObserver(() => window.__connStates.push(el.dataset.state))
            .observe(el, { attributes: true, attributeFilter: ['data-state'] });
        const row = document.querySelector('[data-testid=instrument-BTCUSD]');
        window.__rowStates = [];
        new MutationObserver(() => window.__rowStates.push(row.dataset.fresh))
            .observe(row, { attributes: true, attributeFilter: ['data-fresh'] });
    }""")

    # Envoy goes away: both streams drop, the indicator says so, then they come back.
    platform.restart_envoy(down_s=2.0)
    expect(t.tid("conn-status")).to_have_attribute("data-state", "live", timeout=30_000)
    assert "down" in page.evaluate("window.__connStates"), "the indicator never showed the drop"
    # While the quote stream was down its prices were greyed, and they are fresh again.
    assert "offline" in page.evaluate("window.__rowStates"), "prices were not greyed"
    expect(t.tid("instrument-BTCUSD")).to_have_attribute("data-fresh", "fresh")
    page.evaluate("window.__connStates = []")
    before = t.bid("BTCUSD")
    wait_for(lambda: t.bid("BTCUSD") != before, what="quotes after the Envoy restart")

    # MarketData restarts: the quote stream resumes on its own.
    platform.restart_service("market")
    expect(t.tid("conn-status")).to_have_attribute("data-state", "live", timeout=30_000)
    assert "down" in page.evaluate("window.__connStates"), "the quote stream never dropped"
    before = t.bid("BTCUSD")
    wait_for(
        lambda: t.bid("BTCUSD") != before, timeout_s=30, what="quotes after the MarketData restart"
    )

    # The account stream still delivers: a position opened now appears and its P&L moves.
    t.select("BTCUSD")
    t.fill_ticket(side="sell", volume="0.02")
    t.submit_ticket()
    expect(t.position_rows()).to_have_count(1)
    row = t.position_rows().first
    wait_distinct(lambda: t.position_pnl(row), 2, what="P&L after reconnecting")

    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    # The access token lives 20 s here: by now the terminal has renewed it on its own.
    wait_for(
        lambda: page.evaluate("window.__terminal.session.accessToken") != token_before,
        timeout_s=30,
        what="the access token to be refreshed",
    )
    t.deposit("1")
    page.screenshot(path=str(artifacts_dir / "web-terminal-main.png"))


def test_keyboard_only_sign_up(page: Page) -> None:
    """Labels, tab order and Enter: the sign-up form works without a mouse."""
    t = Terminal(page)
    t.tid("auth-tab-signup").focus()
    page.keyboard.press("Enter")
    expect(t.tid("auth-email")).to_be_focused()
    page.keyboard.type(fresh_email())
    page.keyboard.press("Tab")
    expect(t.tid("auth-password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    t.expect_terminal()
    assert page.get_by_label("Volume (lots)").is_visible()
