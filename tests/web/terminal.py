"""A page object for the web terminal: what a trader does, in the terminal's own words, found by
the stable data-testid attributes."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from playwright.sync_api import Locator, Page, expect

PASSWORD = "correct-horse-42"
T = TypeVar("T")


def number(text: str) -> Decimal:
    """Reads a number as the terminal shows it: '−1,234.56', '+3.10', '12.5%', '65.20 USD'."""
    cleaned = re.sub(r"[^0-9.+\-]", "", text.replace("−", "-"))
    return Decimal(cleaned)


def fresh_email() -> str:
    return f"web-{uuid.uuid4().hex[:12]}@example.com"


def wait_for(fn: Callable[[], T | None], timeout_s: float = 15.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.2)


class Terminal:
    def __init__(self, page: Page) -> None:
        self.page = page

    def tid(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    # --- layout ----------------------------------------------------------------------------
    @property
    def phone(self) -> bool:
        """On a phone one view shows at a time, chosen in the bottom bar."""
        return self.tid("bottom-nav").is_visible()

    def go(self, view: str) -> None:
        """Shows a view (quotes, chart, trade, positions, history, account) where the layout
        has one view at a time; on wider screens everything is already on screen."""
        if not self.phone:
            return
        button = self.tid(f"nav-{view}")
        if button.get_attribute("aria-pressed") != "true":
            button.click()
        expect(self.tid("terminal")).to_have_attribute("data-view", view)

    # --- session ---------------------------------------------------------------------------
    def _submit_auth(self, tab: str, email: str, password: str) -> None:
        self.tid(f"auth-tab-{tab}").click()
        self.tid("auth-email").fill(email)
        self.tid("auth-password").fill(password)
        self.tid("auth-password").press("Enter")

    def sign_up(self, email: str, password: str = PASSWORD) -> None:
        self._submit_auth("signup", email, password)

    def log_in(self, email: str, password: str = PASSWORD) -> None:
        self._submit_auth("login", email, password)

    def expect_terminal(self) -> None:
        # Sign-up hashes a password: on a loaded machine that takes a while.
        expect(self.tid("terminal")).to_be_visible(timeout=20_000)
        # Both streams up. The pill as a whole may also say some price is stale: that is the
        # platform's feed, not the terminal's connection.
        conn = self.tid("conn-status")
        expect(conn).to_have_attribute("data-quotes", "live", timeout=20_000)
        expect(conn).to_have_attribute("data-account", "live", timeout=20_000)

    def new_trader(self, deposit: str | None = "10000") -> str:
        email = fresh_email()
        self.sign_up(email)
        self.expect_terminal()
        if deposit:
            self.deposit(deposit)
        return email

    def deposit(self, amount: str) -> None:
        before = self.balance()
        self.go("account")
        self.tid("deposit-open").click()
        self.tid("deposit-amount").fill(amount)
        self.tid("deposit-amount").press("Enter")
        expect(self.tid("deposit-dialog")).to_have_count(0)
        wait_for(
            lambda: self.balance() == (before or 0) + Decimal(amount),
            what=f"balance after depositing {amount}",
        )

    def withdraw(self, amount: str) -> None:
        """Opens the withdraw dialog and sends `amount`; the dialog stays open on a refusal."""
        self.go("account")
        self.tid("withdraw-open").click()
        self.tid("withdraw-amount").fill(amount)
        self.tid("withdraw-amount").press("Enter")

    # --- accounts --------------------------------------------------------------------------
    def current_account_id(self) -> str:
        return self.tid("account-switcher").get_attribute("data-account-id") or ""

    def open_account(
        self, account_type: str, real: bool = False, leverage: str = "0", swap_free: bool = False
    ) -> str:
        """Opens another account from the switcher's dialog; returns its number once the
        terminal shows it."""
        before = self.current_account_id()
        self.go("account")
        self.tid("account-switcher").click()
        self.tid("account-open").click()
        self.tid("open-account-type").select_option(account_type)
        if real:
            self.page.locator("label[for=open-account-kind-real]").click()
        self.tid("open-account-leverage").select_option(leverage)
        if swap_free:
            self.page.locator("label[for=open-account-swap-free]").click()
        self.tid("open-account-dialog-submit").click()
        expect(self.tid("open-account-dialog")).to_have_count(0)

        def new_account() -> str | None:
            now = self.current_account_id()
            return now if now and now != before else None

        return wait_for(new_account, what="the new account")

    def switch_account(self, account_id: str) -> None:
        self.go("account")
        self.tid("account-switcher").click()
        self.page.locator(f"[data-testid=account-option][data-account-id='{account_id}']").click()
        expect(self.tid("account-dialog")).to_have_count(0)
        expect(self.tid("account-switcher")).to_have_attribute("data-account-id", account_id)
        conn = self.tid("conn-status")
        expect(conn).to_have_attribute("data-account", "live")

    # --- account bar -----------------------------------------------------------------------
    def metric(self, testid: str) -> Decimal | None:
        text = self.tid(testid).inner_text()
        return None if text.strip() in ("—", "") else number(text)

    def balance(self) -> Decimal | None:
        return self.metric("account-balance")

    # --- market ----------------------------------------------------------------------------
    def select(self, symbol: str) -> None:
        self.go("quotes")
        self.tid(f"instrument-{symbol}").click()
        expect(self.tid("ticket-symbol")).to_have_text(symbol)
        expect(self.tid("chart-symbol")).to_have_text(symbol)

    def bid(self, symbol: str) -> str:
        return self.tid(f"bid-{symbol}").inner_text()

    def steady(self, testid: str, samples: int = 4) -> Decimal:
        """A number the terminal shows, once it has stayed the same for `samples` readings
        (a price the feed holds still, after the stream caught up)."""
        seen: list[str] = []

        def same() -> str | None:
            seen.append(self.tid(testid).inner_text())
            time.sleep(0.3)
            return seen[-1] if len(seen) >= samples and len(set(seen[-samples:])) == 1 else None

        return number(wait_for(same, what=f"{testid} to hold still"))

    # --- ticket ----------------------------------------------------------------------------
    def fill_ticket(
        self,
        side: str = "buy",
        volume: str = "0.10",
        order_type: str = "Market",
        price: str = "",
        sl: str = "",
        tp: str = "",
    ) -> None:
        self.go("trade")
        self.tid(f"ticket-side-{side}").click()
        self.tid("ticket-type").select_option(label=order_type)
        if price:
            self.tid("ticket-price").fill(price)
        self.tid("ticket-volume").fill(volume)
        self.tid("ticket-sl").fill(sl)
        self.tid("ticket-tp").fill(tp)

    def submit_ticket(self, confirm: bool = True) -> None:
        """Sends the ticket; with one-click trading off (the default) the terminal asks to
        confirm side, volume and price first, and `confirm` answers yes."""
        self.go("trade")
        self.tid("ticket-volume").press("Enter")
        if confirm:
            expect(self.tid("confirm-dialog")).to_be_visible()
            self.tid("confirm-dialog-submit").click()
            expect(self.tid("confirm-dialog")).to_have_count(0)

    # --- positions -------------------------------------------------------------------------
    def position_rows(self) -> Locator:
        return self.page.locator("[data-testid=position-row]")

    def positions_view(self) -> Locator:
        """Shows the open positions and returns their rows."""
        self.show_tab("positions")
        return self.position_rows()

    def position_pnl(self, row: Locator) -> Decimal:
        return number(row.get_by_test_id("position-pnl").inner_text())

    def show_tab(self, name: str) -> None:
        self.go("history" if name == "history" else "positions")
        self.tid(f"tab-{name}").click()

    def show_history(self, mode: str) -> None:
        """The history's balance operations ("balance") or closed trades ("trades")."""
        self.show_tab("history")
        self.tid(f"history-mode-{mode}").click()
        expect(self.tid(f"history-mode-{mode}")).to_have_attribute("aria-pressed", "true")


def wait_distinct(
    fn: Callable[[], T], count: int, timeout_s: float = 15.0, what: str = "values"
) -> set[T]:
    """Samples `fn` until it has returned `count` different values (e.g. a moving P&L)."""
    seen: set[T] = set()

    def enough() -> bool:
        seen.add(fn())
        return len(seen) >= count

    wait_for(enough, timeout_s, what)
    return seen
