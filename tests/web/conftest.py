"""Browser tests: one real platform (tests/web/platform.py) and one Chromium per session; a
fresh browser context (its own session storage) per test, at a laptop-sized viewport unless a
test asks for another (parametrize `viewport` indirectly with a name from VIEWPORTS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.web.platform import Platform

CHROMIUM = os.environ.get("EXNESS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Short-lived access tokens, so that the terminal must refresh them during the tests.
ACCESS_TOKEN_TTL_S = 20
VIEWPORTS = {"phone": (390, 844), "tablet": (768, 1024), "desktop": (1280, 720)}
# A zone that is not UTC and not a whole number of hours from it, so a time shown in the wrong
# zone cannot pass for the right one.
BROWSER_TIMEZONE = "Asia/Kathmandu"
# Records Content-Security-Policy violations: the policy must not break the terminal.
CSP_PROBE = """document.addEventListener('securitypolicyviolation', (e) =>
    (window.__cspViolations = window.__cspViolations || []).push(
        `${e.violatedDirective} ${e.blockedURI}`));"""


@pytest.fixture(scope="session")
def platform(
    session_dir: Path, single_shard_database_url: str, kafka_bootstrap: str
) -> Iterator[Platform]:
    database_url = single_shard_database_url
    root = session_dir / "web-platform"
    root.mkdir(parents=True, exist_ok=True)
    plat = Platform(root, database_url, kafka_bootstrap, access_token_ttl_s=ACCESS_TOKEN_TTL_S)
    try:
        plat.start()
    except Exception:
        print(plat.logs_tail())
        plat.stop()
        raise
    yield plat
    plat.stop()


# Playwright's sync API keeps an event loop running in this thread while it is open, and
# pytest-asyncio cannot start async fixtures then: so the platform (which needs the async broker
# fixture) comes first, and Playwright lives for one module at a time.
@pytest.fixture(scope="module")
def playwright_session(platform: Platform) -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    b = playwright_session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def viewport(request: pytest.FixtureRequest) -> str:
    name = getattr(request, "param", "desktop")
    assert name in VIEWPORTS, name
    return str(name)


@pytest.fixture
def context(browser: Browser, viewport: str) -> Iterator[BrowserContext]:
    width, height = VIEWPORTS[viewport]
    ctx = browser.new_context(
        viewport={"width": width, "height": height},
        locale="en-US",
        timezone_id=BROWSER_TIMEZONE,
        accept_downloads=True,
    )
    ctx.add_init_script(CSP_PROBE)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(platform: Platform, context: BrowserContext) -> Iterator[Page]:
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(platform.url)
    yield pg
    # An uncaught exception in the terminal is a bug even when the test's checks passed.
    assert not errors, f"uncaught errors in the page: {errors}"
    violations = pg.evaluate("window.__cspViolations || []")
    assert not violations, f"the Content-Security-Policy blocked: {violations}"
