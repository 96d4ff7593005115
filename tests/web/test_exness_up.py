"""The URL `exness up` prints opens the terminal, and it trades on the whole platform `exness up`
starts (embedded PostgreSQL and broker, services, the synthetic poller feed, Envoy)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.support.processes import start_up, stop_up, up_env, wait_for_state
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.web.terminal import Terminal, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def exness_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("exness-up")
    log_path = data_dir / "up.out"
    proc = start_up(data_dir, log_path, up_env())
    try:
        edge_url = wait_for_state(data_dir, proc, log_path, timeout_s=180)["edge_url"]
        # The one URL it prints is the terminal's.
        printed = wait_for(
            lambda: re.search(r"Web terminal:\s*(\S+)", log_path.read_text()),
            timeout_s=10,
            what="the printed URL",
        )
        assert printed.group(1).rstrip("/") == edge_url.rstrip("/")
        yield printed.group(1)
    finally:
        stop_up(proc)


# Module-local browser: Playwright starts only after `exness up` is running (see conftest.py).
@pytest.fixture(scope="module")
def up_browser(exness_up: str) -> Iterator[Browser]:
    p: Playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def up_page(up_browser: Browser, exness_up: str) -> Iterator[Page]:
    ctx = up_browser.new_context(viewport={"width": 1280, "height": 720})
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    page.goto(exness_up)
    yield page
    ctx.close()


def test_exness_up_url_opens_a_working_terminal(up_page: Page, artifacts_dir: Path) -> None:
    t = Terminal(up_page)
    t.new_trader(deposit="5000")
    first = wait_for(
        lambda: t.bid("BTCUSD") if t.bid("BTCUSD") != "—" else None,
        timeout_s=30,
        what="a quote from the poller's feed",
    )
    wait_for(lambda: t.bid("BTCUSD") != first, timeout_s=30, what="the feed to move the price")
    t.select("BTCUSD")
    t.fill_ticket(side="buy", volume="0.01")
    t.submit_ticket()
    expect(t.tid("ticket-message")).to_contain_text("Bought 0.01 BTCUSD")
    expect(t.position_rows()).to_have_count(1)
    up_page.screenshot(path=str(artifacts_dir / "web-terminal-exness-up.png"))
