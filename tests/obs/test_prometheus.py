"""The Prometheus `exness up` starts: every target up, and the stale-quote alert firing for
the symbol whose quotes stop (and only for it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
import pytest
from exness.market.v1 import market_pb2_grpc

from kit.rpc.interceptors import SERVICE_TOKEN_HEADER
from tests.obs.conftest import MAX_QUOTE_AGE_S, Stack
from tests.obs.feed import PRICES, quotes
from tests.obs.scrape import prometheus_api, scrape, select

pytestmark = pytest.mark.slow  # runs against a whole `exness up`

T = TypeVar("T")


def _wait(what: str, check: Callable[[], T | None], timeout_s: float = 30.0) -> T:
    """The first result of `check` that is not None."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None:
            return result
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s}s"
        time.sleep(0.5)


def test_every_target_is_up(stack: Stack) -> None:
    def targets() -> dict[str, str] | None:
        active = prometheus_api(stack.prometheus, "/api/v1/targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in active}
        return health if set(health.values()) == {"up"} else None

    # No poller: this stack runs without a feed.
    assert _wait("every target up", targets) == {
        "auth": "up",
        "market": "up",
        "trading": "up",
        "envoy": "up",
    }


def _alerts(stack: Stack) -> dict[str, str]:
    """symbol -> state of the QuoteStale alerts."""
    alerts = prometheus_api(stack.prometheus, "/api/v1/alerts")["alerts"]
    return {
        a["labels"]["symbol"]: a["state"]
        for a in alerts
        if a["labels"]["alertname"] == "QuoteStale"
    }


def test_a_stalled_symbol_ages_and_fires_the_stale_quote_alert(stack: Stack) -> None:
    stop = threading.Event()
    with grpc.insecure_channel(stack.state["market"]) as channel:
        call = market_pb2_grpc.MarketDataServiceStub(channel).PublishQuotes.future(
            quotes(["BTCUSD", "ETHUSD"], stop),
            metadata=[(SERVICE_TOKEN_HEADER, stack.service_token)],
        )
        try:
            # ETHUSD stopped after its first quote; BTCUSD keeps coming.
            def ages() -> dict[str, float]:
                samples = select(scrape(stack.metrics_url("market")), "exness_quote_age_seconds")
                return {dict(k)["symbol"]: v for k, v in samples.items()}

            def quoted() -> dict[str, float] | None:
                found = ages()
                return found if found.keys() >= PRICES.keys() else None

            def fired() -> dict[str, str] | None:
                alerts = _alerts(stack)
                return alerts if alerts.get("ETHUSD") == "firing" else None

            first = quoted() or _wait("both symbols quoted", quoted)
            firing = _wait("QuoteStale firing", fired, timeout_s=MAX_QUOTE_AGE_S + 30)
            later = ages()
            assert later["ETHUSD"] > MAX_QUOTE_AGE_S
            assert later["ETHUSD"] > first["ETHUSD"]  # it keeps growing
            assert later["BTCUSD"] < MAX_QUOTE_AGE_S
            assert "BTCUSD" not in firing  # the live symbol does not alert
        finally:
            stop.set()
            call.result(timeout=10)
