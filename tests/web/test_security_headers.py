"""What Envoy serves for the web terminal carries security headers: a Content-Security-Policy
of its own origin only (which the terminal runs under without a violation: the page fixture
checks every test for one), no MIME sniffing, no referrer, and no framing."""

from __future__ import annotations

import time
import urllib.request

import pytest
from playwright.sync_api import Page

from tests.web.platform import Platform
from tests.web.terminal import wait_for

pytestmark = [pytest.mark.browser]


def test_terminal_files_carry_security_headers(platform: Platform) -> None:
    for path in ("/", "/index.html", "/app.js", "/app.css"):
        with urllib.request.urlopen(platform.url.rstrip("/") + path, timeout=10) as res:
            headers = res.headers
        csp = headers.get("content-security-policy", "")
        directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
        assert directives.get("default-src") == "default-src 'self'", (path, csp)
        assert directives.get("script-src") == "script-src 'self'", (path, csp)
        assert directives.get("connect-src") == "connect-src 'self'", (path, csp)
        assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (path, csp)
        assert "'unsafe-inline'" not in csp, (path, csp)
        assert "*" not in csp, (path, csp)
        assert headers.get("x-content-type-options") == "nosniff", path
        assert headers.get("referrer-policy") == "no-referrer", path
        assert headers.get("x-frame-options") == "DENY", path


def test_the_terminal_refuses_to_load_in_a_frame(page: Page, platform: Platform) -> None:
    """frame-ancestors 'none': even a page of its own origin cannot frame it (clickjacking)."""
    page.set_content(f'<iframe id="f" src="{platform.url}"></iframe>')
    wait_for(lambda: len(page.frames) == 2, what="the frame")
    time.sleep(1.5)  # time enough to load the terminal, were it allowed to
    assert page.frame_locator("#f").get_by_test_id("auth-screen").count() == 0
