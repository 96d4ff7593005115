"""Issue 10 item 5, the terminal's side: the platform ends an account stream with
UNAUTHENTICATED when the access token it was opened with expires; the terminal renews the token
and reopens the stream without a visible gap (the indicator never leaves "live") and events keep
arriving on the new stream."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlparse

import grpc
import pytest
from exness.trading.v1 import trading_pb2, trading_pb2_grpc
from playwright.sync_api import Page

from tests.web.conftest import ACCESS_TOKEN_TTL_S
from tests.web.platform import Platform
from tests.web.terminal import Terminal, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def deposit_elsewhere(platform: Platform, token: str, amount: str) -> None:
    """A deposit made outside this page (through Envoy's native gRPC): the page learns of it
    only from its account stream."""
    edge = urlparse(platform.url)
    with grpc.insecure_channel(f"{edge.hostname}:{edge.port}") as channel:
        trading_pb2_grpc.TradingServiceStub(channel).Deposit(
            trading_pb2.DepositRequest(amount=amount),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=10,
        )


def test_account_stream_outlives_its_token_without_a_gap(page: Page, platform: Platform) -> None:
    t = Terminal(page)
    t.new_trader(deposit="100")
    page.evaluate("""() => {
        const el = document.querySelector('[data-testid=conn-status]');
        window.__connStates = [];
        new MutationObserver(() => window.__connStates.push(el.dataset.state))
            .observe(el, { attributes: true, attributeFilter: ['data-state'] });
    }""")

    wait_for(
        lambda: page.evaluate("window.__terminal.streams().account.renewals") >= 1,
        # The stream open now carries a token that expires within ACCESS_TOKEN_TTL_S.
        timeout_s=2 * ACCESS_TOKEN_TTL_S + 10,
        what="the account stream to be ended at its token's expiry and reopened",
    )
    states = page.evaluate("window.__connStates")
    assert "down" not in states, f"the indicator showed a gap: {states}"
    assert "connecting" not in states, f"the indicator showed a gap: {states}"

    # Events arrive on the reopened stream.
    token = page.evaluate("window.__terminal.session.accessToken")
    deposit_elsewhere(platform, token, "7")
    wait_for(lambda: t.balance() == Decimal("107"), what="the deposit made elsewhere")
