"""A trader's whole day in the terminal, on a phone, a tablet and a desktop: sign up, deposit,
open with SL/TP after confirming, live P&L, drag the stop loss on the chart, close part then the
rest, and find it all in the history (with the deposit) and in its CSV export. Nothing may be
wider than the screen, and on a phone every control is big enough for a finger."""

from __future__ import annotations

import csv
import re
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import BROWSER_TIMEZONE
from tests.web.layout import overflowing, small_touch_targets
from tests.web.platform import Platform
from tests.web.terminal import Terminal, number, wait_distinct, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE_VIEWS = ["quotes", "chart", "trade", "positions", "history", "account"]


def check_layout(page: Page, t: Terminal, where: str) -> None:
    assert overflowing(page) == [], f"wider than the screen at {where}"
    if t.phone:
        assert small_touch_targets(page) == [], f"touch targets under 44 px at {where}"


def y_of(page: Page, price: Decimal) -> float:
    """Where the chart draws `price`, in pixels from its top."""
    y = page.evaluate(
        "(p) => document.querySelector('[data-testid=chart]').priceToY(p)", float(price)
    )
    assert y is not None, f"no chart coordinate for {price}"
    return float(y)


def drag_chart_line(page: Page, t: Terminal, price: Decimal, to: Decimal) -> None:
    """Presses on the chart line drawn at `price` and drags it to where `to` is drawn."""
    # A chart just shown resizes and rescales on its next frames: wait until the line stays put.
    last: list[float] = []

    def settled() -> float | None:
        last.append(y_of(page, price))
        return last[-1] if len(last) >= 3 and last[-1] == last[-2] == last[-3] else None

    y = wait_for(settled, what=f"the line at {price} to settle")
    dy = y_of(page, to) - y
    box = t.tid("chart").bounding_box()
    assert box is not None
    assert 0 < y < box["height"], f"the line at {price} is off the chart ({y})"
    x = box["x"] + box["width"] * 0.4
    page.mouse.move(x, box["y"] + y)
    page.mouse.down()
    page.mouse.move(x, box["y"] + y + dy, steps=6)
    page.mouse.up()


def held_price(t: Terminal, symbol: str) -> Decimal:
    """The bid of a symbol the feed holds still, once the terminal shows it unchanged for a
    second (MarketData adds the instrument's spread markup, so the feed's own price is not it)."""
    seen: list[str] = []

    def steady() -> str | None:
        seen.append(t.bid(symbol))
        time.sleep(0.3)
        return seen[-1] if len(seen) >= 4 and len(set(seen[-4:])) == 1 else None

    return number(wait_for(steady, what=f"{symbol} to hold still"))


def local(epoch_s: float, zone: str) -> str:
    return datetime.fromtimestamp(epoch_s, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def chart_candle_time(t: Terminal, zone: str) -> tuple[str, str]:
    """The forming candle's time as the chart's OHLC line shows it, and as it should read in
    `zone` (read together, so a new candle cannot slip in between)."""
    t.go("chart")
    shown, epoch = t.page.evaluate("""() => [
        document.querySelector('[data-testid=chart-ohlc]').textContent.split(' ')[0],
        document.querySelector('[data-testid=chart]').dataset.lastTime]""")
    return shown, local(float(epoch), zone)[11:16]


@pytest.mark.parametrize("viewport", ["phone", "tablet", "desktop"], indirect=True)
def test_whole_trader_flow(
    page: Page, viewport: str, platform: Platform, artifacts_dir: Path
) -> None:
    assert platform.feed is not None
    t = Terminal(page)
    shot = artifacts_dir / f"web-{viewport}"
    expect(t.tid("auth-screen")).to_be_visible()
    check_layout(page, t, "the sign-up screen")
    t.new_trader(deposit="10000")
    check_layout(page, t, "the terminal")
    assert t.phone == (viewport == "phone")

    # BTCUSD moves only when this test moves it, so SL/TP and P&L are known in advance.
    mid = platform.feed.mid("BTCUSD").quantize(Decimal("1"))
    platform.feed.set_mid("BTCUSD", mid)
    try:
        t.select("BTCUSD")
        bid = held_price(t, "BTCUSD")
        sl, tp = bid - 300, bid + 300
        # A stop loss above the bid is refused before sending, naming the field and the rule.
        t.fill_ticket(side="buy", volume="0.10", sl=str(bid + 50), tp=str(tp))
        t.submit_ticket(confirm=False)
        expect(t.tid("ticket-error")).to_have_text(
            f"Stop loss must be below the bid ({bid:,.2f}) for a buy."
        )
        expect(t.tid("ticket-sl")).to_have_attribute("aria-invalid", "true")
        expect(t.tid("confirm-dialog")).to_have_count(0)
        t.fill_ticket(side="buy", volume="0.10", sl=str(sl), tp=str(tp))

        # The estimate includes the spread the engine deducts: margin + volume x size x spread.
        expect(t.tid("ticket-bid")).to_have_text(f"{bid:,.2f}")
        ask = number(t.tid("ticket-ask").inner_text())
        leverage = Decimal(t.tid("ticket-effective-leverage").inner_text().split(":")[1])
        margin = Decimal("0.10") * ask / leverage
        spread_cost = Decimal("0.10") * (ask - bid)
        cent = Decimal("0.01")
        assert number(t.tid("ticket-required-margin").inner_text()) == margin.quantize(cent)
        assert number(t.tid("ticket-spread-cost").inner_text()) == spread_cost.quantize(cent)
        needed = number(t.tid("ticket-margin-needed").inner_text())
        assert needed == (margin + spread_cost).quantize(cent)

        # One-click trading is off: the ticket asks first, with side, volume and price.
        assert not t.tid("one-click").is_checked()
        t.tid("ticket-volume").press("Enter")
        expect(t.tid("confirm-dialog")).to_be_visible()
        lines = t.tid("confirm-dialog-lines")
        expect(lines).to_contain_text("Buy at market")
        expect(lines).to_contain_text("0.10 lots BTCUSD")
        expect(lines).to_contain_text(f"{ask:,.2f}")
        check_layout(page, t, "the order confirmation")
        t.tid("confirm-dialog-submit").click()
        expect(t.tid("ticket-message")).to_contain_text("Bought 0.10 BTCUSD at")

        rows = t.positions_view()
        expect(rows).to_have_count(1)
        row = rows.first
        expect(row.get_by_test_id("position-sl")).to_have_text(f"{sl:,.2f}")
        expect(row.get_by_test_id("position-tp")).to_have_text(f"{tp:,.2f}")

        # Live P&L: the price moves, the P&L follows without a reload.
        platform.feed.set_mid("BTCUSD", mid + 40)
        wait_distinct(lambda: t.position_pnl(row), 2, what="the P&L to follow the price")
        platform.feed.set_mid("BTCUSD", mid + 80)
        wait_for(lambda: t.position_pnl(row) > 0, what="a profit after the price rose")

        if t.phone:
            for view in PHONE_VIEWS:
                t.go(view)
                check_layout(page, t, f"the {view} view")
                page.screenshot(path=str(shot) + f"-{view}.png")
        else:
            check_layout(page, t, "the terminal with a position")
            page.screenshot(path=str(shot) + "-position.png")

        # Drag the stop loss up on the chart: ModifyPosition, and the answer is shown.
        t.go("chart")
        expect(t.tid("chart")).to_have_attribute("data-draggable", re.compile(r"sl:"))
        drag_chart_line(page, t, sl, sl + 100)
        expect(t.tid("chart-drag-status")).to_contain_text("stop loss moved to")
        moved = number(t.tid("chart-drag-status").inner_text().rsplit(" ", 1)[1])
        # Up from where it was, and still below the bid it must stay under.
        assert sl < moved < bid
        t.positions_view()
        expect(row.get_by_test_id("position-sl")).to_have_text(f"{moved:,.2f}")
        # Dragged above the bid it is refused, in words naming the field, and stays put.
        t.go("chart")
        drag_chart_line(page, t, moved, tp)
        expect(t.tid("chart-drag-status")).to_contain_text("Stop loss not moved: Stop loss:")
        t.positions_view()
        expect(row.get_by_test_id("position-sl")).to_have_text(f"{moved:,.2f}")

        # Close half, then the rest.
        row.get_by_test_id("position-close").click()
        t.tid("close-volume").fill("0.05")
        t.tid("close-volume").press("Enter")
        expect(row.get_by_test_id("position-volume")).to_have_text("0.05")
        t.positions_view().first.get_by_test_id("position-close").click()
        t.tid("close-volume").press("Enter")
        expect(t.position_rows()).to_have_count(0)
    finally:
        platform.feed.set_mid("BTCUSD", platform.feed.mid("BTCUSD"), freeze=False)

    # History: both closed trades; the balance operations (the deposit and both closes'
    # P&L), with totals per kind that add up to the balance.
    t.show_history("trades")
    trades = page.locator("[data-testid=trade-row]")
    expect(trades).to_have_count(2)
    pnls = [number(x) for x in page.locator("[data-testid=trade-pnl]").all_inner_texts()]
    wait_for(lambda: t.balance() == Decimal("10000") + sum(pnls), what="balance = deposit + P&L")
    assert number(t.tid("history-total-pnl").inner_text()) == sum(pnls)
    t.show_history("balance")
    ops = page.locator("[data-testid=ledger-row]")
    expect(ops).to_have_count(3)
    expect(ops.last.get_by_test_id("history-type")).to_have_text("Deposit")
    expect(ops.last.get_by_test_id("ledger-amount")).to_have_text("+10,000.00")
    expect(t.tid("history-total-deposit")).to_have_text("+10,000.00")
    assert number(t.tid("history-total-realized_pnl").inner_text()) == sum(pnls)
    assert number(t.tid("history-total-net").inner_text()) == t.balance()
    t.tid("history-period").select_option("today")
    expect(ops).to_have_count(3)
    t.show_history("trades")
    expect(trades).to_have_count(2)

    # Times: the browser's zone everywhere, named in the header, switchable to UTC.
    closed_at = page.evaluate("Number(window.__terminal.store.trades[0].closeTime.seconds)")
    expect(t.tid("tz-toggle")).to_contain_text("UTC+05:45 Asia/Kat")  # Chromium: Katmandu
    expect(trades.first.locator("td.time")).to_have_text(local(closed_at, BROWSER_TIMEZONE))
    shown, expected = chart_candle_time(t, BROWSER_TIMEZONE)
    assert shown == expected
    t.tid("tz-toggle").click()
    expect(t.tid("tz-toggle")).to_have_text("UTC")
    shown, expected = chart_candle_time(t, "UTC")
    assert shown == expected
    t.show_history("trades")
    expect(trades.first.locator("td.time")).to_have_text(local(closed_at, "UTC"))

    # CSV export of the period's balance operations: plain decimals, the zone named.
    t.show_history("balance")
    with page.expect_download() as download:
        t.tid("history-export").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    table = list(csv.DictReader(text.splitlines()))
    assert [r["Type"] for r in table].count("Realised P&L") == 2
    dep = [r for r in table if r["Type"] == "Deposit"]
    assert [r["Amount (USD)"] for r in dep] == ["10000.00"]
    assert dep[0]["Balance after (USD)"] == "10000.00"
    realised = [Decimal(r["Amount (USD)"]) for r in table if r["Type"] == "Realised P&L"]
    assert sorted(realised) == sorted(pnls)
    assert {r["Time zone"] for r in table} == {"UTC"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["Time"]) for r in table)
    check_layout(page, t, "the history")
    page.screenshot(path=str(shot) + "-history.png")


def test_history_pages_balance_operations(page: Page, platform: Platform) -> None:
    """More operations than one page holds: pages of 20 from the server, newest first, none
    lost, and Newer goes back."""
    t = Terminal(page)
    t.new_trader(deposit="100")
    for i in range(24):
        t.deposit(f"{i + 1}")
    t.show_tab("history")
    rows = page.locator("[data-testid=ledger-row]")
    expect(rows).to_have_count(20)
    expect(t.tid("history-page")).to_have_text("Page 1")
    expect(rows.first.get_by_test_id("ledger-amount")).to_have_text("+24.00")
    t.tid("history-next").click()
    expect(rows).to_have_count(5)
    expect(rows.last.get_by_test_id("ledger-amount")).to_have_text("+100.00")
    expect(t.tid("history-next")).to_be_disabled()
    expect(t.tid("history-page")).to_have_text("Page 2")
    expect(t.tid("history-total-deposit")).to_have_text(f"+{100 + sum(range(1, 25)):,.2f}")
    t.tid("history-prev").click()
    expect(rows.first.get_by_test_id("ledger-amount")).to_have_text("+24.00")
    expect(t.tid("history-prev")).to_be_disabled()


def check_account_controls(page: Page, t: Terminal, where: str, shot: Path) -> None:
    """The account list, the open-account and withdraw dialogs and the custom history period
    fit too."""
    t.go("account")
    t.tid("account-switcher").click()
    expect(page.locator("[data-testid=account-option]")).not_to_have_count(0)
    check_layout(page, t, f"{where}, the account list")
    t.tid("account-open").click()
    expect(
        t.tid("open-account-conditions").locator("[data-testid=open-account-term]")
    ).not_to_have_count(0)
    check_layout(page, t, f"{where}, opening an account")
    page.screenshot(path=f"{shot}-open-account.png")
    t.tid("open-account-dialog-cancel").click()
    t.tid("withdraw-open").click()
    check_layout(page, t, f"{where}, withdrawing")
    t.tid("withdraw-dialog-cancel").click()
    t.show_tab("history")
    t.tid("history-period").select_option("custom")
    expect(t.tid("history-from")).to_be_visible()
    check_layout(page, t, f"{where}, history between custom dates")
    page.screenshot(path=f"{shot}-history-custom.png")
    t.tid("history-period").select_option("all")


@pytest.mark.parametrize("viewport", ["phone"], indirect=True)
def test_every_view_fits_from_the_smallest_phone_to_a_laptop(
    page: Page, artifacts_dir: Path
) -> None:
    """The edges of each range, with a position and a pending order on screen: nothing wider
    than the screen, and on phones every control big enough for a finger; the account
    controls too."""
    t = Terminal(page)
    t.new_trader(deposit="5000")
    t.select("ETHUSD")
    t.fill_ticket(side="sell", volume="0.10")
    t.submit_ticket()
    expect(t.positions_view()).to_have_count(1)
    for width, height in [(360, 640), (430, 932), (1024, 768), (1100, 800), (1366, 768)]:
        page.set_viewport_size({"width": width, "height": height})
        views = PHONE_VIEWS if width <= 700 else ["positions"]
        for view in views:
            t.go(view)
            check_layout(page, t, f"{width}x{height}, {view}")
        assert t.phone == (width <= 700)
        if width in (360, 1024, 1366):
            check_account_controls(page, t, f"{width}x{height}", artifacts_dir / f"web-{width}")
