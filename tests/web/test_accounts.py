"""Several trading accounts in the terminal: the switcher, "open account" with the type's
conditions, Withdraw beside Deposit, commission on positions and trades, and the history of
balance operations (ListTransactions) with the running balance, totals, paging and CSV export;
each account shows only its own figures."""

from __future__ import annotations

import csv
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.web.platform import Platform
from tests.web.terminal import Terminal, number, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def ledger_rows(t: Terminal) -> list[tuple[str, Decimal, Decimal]]:
    """(type, amount, balance after) of each balance operation shown, newest first."""
    rows = t.page.locator("[data-testid=ledger-row]")
    return [
        (
            r.get_by_test_id("history-type").inner_text(),
            number(r.get_by_test_id("ledger-amount").inner_text()),
            number(r.get_by_test_id("ledger-balance").inner_text()),
        )
        for r in rows.all()
    ]


def term(page: Page, symbol: str) -> Locator:
    return page.locator(f"[data-testid=open-account-term][data-symbol={symbol}]")


def test_second_account_withdraw_commission_and_history(
    page: Page, platform: Platform, artifacts_dir: Path
) -> None:
    assert platform.feed is not None
    # BTCUSD moves only when this test moves it: spreads, stops and P&L are known.
    mid = platform.feed.mid("BTCUSD").quantize(Decimal("1"))
    platform.feed.set_mid("BTCUSD", mid)
    try:
        second_account_flow(page, platform, artifacts_dir, mid)
    finally:
        platform.feed.set_mid("BTCUSD", platform.feed.mid("BTCUSD"), freeze=False)


def second_account_flow(page: Page, platform: Platform, artifacts_dir: Path, mid: Decimal) -> None:
    assert platform.feed is not None
    t = Terminal(page)
    t.new_trader(deposit="10000")
    default = t.current_account_id()
    t.select("BTCUSD")
    standard_spread = t.steady("ticket-spread")
    expect(t.tid("account-current")).to_have_text(f"Standard · Demo #{default}")

    # The dialog shows each type's conditions before anything is opened.
    t.tid("account-switcher").click()
    expect(page.locator("[data-testid=account-option]")).to_have_count(1)
    t.tid("account-open").click()
    t.tid("open-account-type").select_option("raw_spread")
    expect(t.tid("open-account-margin-call")).to_have_text("30%")
    expect(t.tid("open-account-stop-out")).to_have_text("0%")
    expect(t.tid("open-account-max-leverage")).to_have_text("1:2000")
    expect(term(page, "BTCUSD").get_by_test_id("term-commission")).to_have_text("3.25 USD")
    expect(term(page, "BTCUSD").get_by_test_id("term-spread")).to_have_text("0")
    t.tid("open-account-type").select_option("standard")
    expect(t.tid("open-account-margin-call")).to_have_text("60%")
    expect(term(page, "BTCUSD").get_by_test_id("term-commission")).to_have_text("none")
    page.screenshot(path=str(artifacts_dir / "web-open-account.png"))
    t.tid("open-account-dialog-cancel").click()

    raw = t.open_account("raw_spread", real=True, leverage="500", swap_free=True)
    expect(t.tid("account-current")).to_have_text(f"Raw Spread · Real #{raw}")
    # Every view now shows the new account: no balance, no positions, no history.
    wait_for(lambda: t.balance() == 0, what="the new account's zero balance")
    expect(t.tid("account-leverage")).to_have_value("500")
    t.show_tab("history")
    expect(t.tid("history-empty")).to_be_visible()
    # Quotes now carry Raw Spread's BTCUSD spread: the default markup (10) less.
    t.go("trade")
    raw_spread = t.steady("ticket-spread")
    assert standard_spread - raw_spread == Decimal("10"), (standard_spread, raw_spread)

    # Withdraw beside Deposit: more than the free margin is refused, in words.
    t.withdraw("50")
    expect(t.tid("withdraw-dialog-error")).to_have_text(
        "Not enough free margin to withdraw that much: free margin is 0.00 USD."
    )
    t.tid("withdraw-dialog-cancel").click()
    t.deposit("1000")
    t.withdraw("100")
    expect(t.tid("withdraw-dialog")).to_have_count(0)
    wait_for(lambda: t.balance() == Decimal("900"), what="900 after withdrawing 100")

    # Raw Spread charges 3.25 USD per lot per side on BTCUSD: shown before sending, on the
    # position, and on the trade (both sides).
    # A trailing stop from the ticket starts the stop loss at its distance from the bid.
    t.select("BTCUSD")
    bid = t.steady("bid-BTCUSD")
    t.fill_ticket(side="buy", volume="1.00")
    t.tid("ticket-trailing").fill("500")
    expect(t.tid("ticket-commission")).to_have_text("3.25 USD")
    t.submit_ticket()
    row = t.positions_view().first
    expect(row.get_by_test_id("position-commission")).to_have_text("−3.25")
    expect(row.get_by_test_id("position-swap")).to_have_text("0.00")
    expect(row.get_by_test_id("position-trailing")).to_have_text("500.00")
    expect(row.get_by_test_id("position-sl")).to_have_text(f"{bid - 500:,.2f}")
    # Closer in the modify dialog; then the price rises and the stop follows it.
    row.get_by_test_id("position-modify").click()
    expect(t.tid("modify-trailing")).to_have_value("500")
    t.tid("modify-trailing").fill("300")
    t.tid("modify-trailing").press("Enter")
    expect(t.tid("modify-dialog")).to_have_count(0)
    expect(row.get_by_test_id("position-trailing")).to_have_text("300.00")
    expect(row.get_by_test_id("position-sl")).to_have_text(f"{bid - 300:,.2f}")
    platform.feed.set_mid("BTCUSD", mid + 100)

    def risen_bid() -> Decimal | None:
        b = t.steady("bid-BTCUSD")
        return b if b > bid + 90 else None

    risen = wait_for(risen_bid, what="the bid to rise by 100")
    expect(row.get_by_test_id("position-sl")).to_have_text(f"{risen - 300:,.2f}")
    # 1:1 would need the position's whole value as margin: refused in words, nothing changes.
    t.tid("account-leverage").select_option("1")
    refusal = page.locator("[data-testid=toast]", has_text="Leverage not changed")
    expect(refusal).to_contain_text("more than your equity of")
    expect(t.tid("account-leverage")).to_have_value("500")

    # The default account does not show this position, nor this account's margin; back on the
    # Raw Spread account it is there again, as it was.
    t.switch_account(default)
    expect(t.positions_view()).to_have_count(0)
    wait_for(lambda: t.metric("account-margin") == 0, what="no margin on the default account")
    t.switch_account(raw)
    row = t.positions_view().first
    expect(t.position_rows()).to_have_count(1)
    expect(row.get_by_test_id("position-trailing")).to_have_text("300.00")
    row.get_by_test_id("position-close").click()
    t.tid("close-volume").press("Enter")
    expect(t.position_rows()).to_have_count(0)

    t.show_history("trades")
    trade = page.locator("[data-testid=trade-row]")
    expect(trade).to_have_count(1)
    expect(trade.get_by_test_id("trade-commission")).to_have_text("−6.50")
    pnl = number(trade.get_by_test_id("trade-pnl").inner_text())
    expect(t.tid("history-total-commission")).to_have_text("−6.50")

    # Balance operations, newest first, each with the balance after it.
    t.show_history("balance")
    expect(page.locator("[data-testid=ledger-row]")).to_have_count(5)
    ops = ledger_rows(t)
    assert sorted(kind for kind, _, _ in ops) == sorted(
        ["Commission", "Commission", "Realised P&L", "Withdrawal", "Deposit"]
    )
    assert ops[-1] == ("Deposit", Decimal("1000"), Decimal("1000"))
    for (_, amount, after), (_, _, before) in pairwise(ops):
        assert after == before + amount, ops
    balance = Decimal("900") - Decimal("6.50") + pnl
    assert ops[0][2] == balance
    wait_for(lambda: t.balance() == balance, what="the balance after the trade")
    expect(t.tid("history-total-deposit")).to_have_text("+1,000.00")
    expect(t.tid("history-total-withdrawal")).to_have_text("−100.00")
    expect(t.tid("history-total-commission")).to_have_text("−6.50")
    assert number(t.tid("history-total-net").inner_text()) == balance
    page.screenshot(path=str(artifacts_dir / "web-account-history.png"))

    # Custom dates (whole days in the chosen zone): a month long past holds nothing; up to a
    # day far ahead holds all of it.
    t.tid("history-period").select_option("custom")
    t.tid("history-from").fill("2020-01-01")
    t.tid("history-to").fill("2020-01-31")
    expect(t.tid("history-empty")).to_be_visible()
    expect(t.tid("history-total-net")).to_have_text("0.00")
    t.tid("history-to").fill("2099-12-31")
    expect(page.locator("[data-testid=ledger-row]")).to_have_count(5)
    assert number(t.tid("history-total-net").inner_text()) == balance

    with page.expect_download() as download:
        t.tid("history-export").click()
    table = list(csv.DictReader(Path(download.value.path()).read_text("utf-8").splitlines()))
    assert [
        (r["Type"], Decimal(r["Amount (USD)"]), Decimal(r["Balance after (USD)"])) for r in table
    ] == ops

    # Back on the default account: its own balance and history, none of the other's.
    t.switch_account(default)
    expect(t.tid("account-current")).to_have_text(f"Standard · Demo #{default}")
    wait_for(lambda: t.balance() == Decimal("10000"), what="the default account's balance")
    t.show_tab("history")
    expect(page.locator("[data-testid=ledger-row]")).to_have_count(1)
    assert ledger_rows(t) == [("Deposit", Decimal("10000"), Decimal("10000"))]
    t.tid("account-switcher").click()
    options = page.locator("[data-testid=account-option]")
    expect(options).to_have_count(2)
    raw_option = options.filter(has=page.locator(f"text=#{raw}"))
    expect(raw_option.get_by_test_id("account-kind")).to_have_text("Real")
    expect(raw_option.get_by_test_id("account-option-balance")).to_have_text(f"{balance:,.2f} USD")
