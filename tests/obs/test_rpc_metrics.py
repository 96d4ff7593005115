"""Real traffic through Envoy (REST, native gRPC, gRPC-Web) moves the services' per-RPC
metrics and Envoy's per-method gRPC stats for exactly the methods and codes called."""

from __future__ import annotations

import re
import struct
import time
import uuid
from collections import Counter

import grpc
import httpx
import pytest
from exness.market.v1 import market_pb2, market_pb2_grpc
from exness.trading.v1 import trading_pb2, trading_pb2_grpc

from tests.obs.conftest import Stack
from tests.obs.scrape import Labels, Samples, moved, scrape, select

pytestmark = pytest.mark.slow  # runs against a whole `exness up`

JOBS = ("auth", "market", "trading")
# Calls the platform makes by itself: health checks, and the JWKS fetches of Envoy and of
# the services' token verifiers.
BACKGROUND = ("grpc.health.v1.Health", "GetJwks")
MARKET = "exness.market.v1.MarketDataService"
TRADING = "exness.trading.v1.TradingService"
AUTH = "exness.auth.v1.AuthService"


def _service_calls(stack: Stack) -> dict[str, Samples]:
    return {job: scrape(stack.metrics_url(job)) for job in JOBS}


def _handled(delta: dict[Labels, float]) -> Counter[tuple[str, str, str]]:
    out: Counter[tuple[str, str, str]] = Counter()
    for labels, value in delta.items():
        d = dict(labels)
        if d["grpc_service"] in BACKGROUND or d["grpc_method"] in BACKGROUND:
            continue
        out[(d["grpc_service"], d["grpc_method"], d.get("grpc_code", ""))] += int(value)
    return out


def _grpc_web_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def _envoy_method_counts(samples: Samples) -> Counter[tuple[str, str]]:
    """(service/method, outcome) -> count from Envoy's grpc_stats counters; outcome is a
    status number, "success", "failure" or "total". Envoy's tag extractor takes the first two
    parts of a dotted service name as tags, so the rest of it and the method are in the
    metric name: envoy_cluster_grpc_v1_MarketDataService_GetQuote_5_total."""
    counts: Counter[tuple[str, str]] = Counter()
    for (name, labels), value in samples.items():
        match = _ENVOY_GRPC.match(name)
        if match is None or match["method"] in BACKGROUND:
            continue
        d = dict(labels)
        service = ".".join(
            (
                d["envoy_grpc_bridge_service"],
                d["envoy_grpc_bridge_method"],
                match["rest"],
                match["service"],
            )
        )
        counts[(f"{service}/{match['method']}", match["outcome"])] += int(value)
    return counts


_ENVOY_GRPC = re.compile(
    r"^envoy_cluster_grpc_(?P<rest>v\d+)_(?P<service>\w+Service)_(?P<method>[A-Za-z]+)_"
    r"(?P<outcome>\d+|success|failure|total)_total$"
)


def _register(client: httpx.Client, email: str) -> httpx.Response:
    return client.post("/v1/auth/register", json={"email": email, "password": "a long passw0rd"})


def test_traffic_through_every_protocol_moves_exactly_its_metrics(stack: Stack) -> None:
    with httpx.Client(base_url=stack.edge_url, timeout=10) as client:
        email = f"m-{uuid.uuid4().hex[:12]}@example.com"
        # Registered before the first scrape: the account this user gets is not part of it.
        token = _register(client, email).json()["tokens"]["accessToken"]
        time.sleep(0.5)
        before = _service_calls(stack)
        envoy_before = scrape(stack.envoy_metrics_url)

        # REST (transcoded by Envoy)
        assert client.get("/v1/instruments").status_code == 200
        assert client.get("/v1/instruments").status_code == 200
        assert client.get("/v1/quotes/NOPE").status_code == 404
        assert _register(client, email).status_code == 409  # ALREADY_EXISTS
        bad_order = client.post(
            "/v1/orders",
            headers={"authorization": f"Bearer {token}"},
            json={
                "symbol": "BTCUSD",
                "side": "ORDER_SIDE_BUY",
                "type": "ORDER_TYPE_MARKET",
                "volume": "-1",
            },
        )
        assert bad_order.status_code == 400, bad_order.text
        deposit = client.post(
            "/v1/account:deposit",
            headers={"authorization": f"Bearer {token}"},
            json={"amount": "1000"},
        )
        assert deposit.status_code == 200, deposit.text

        # native gRPC through the edge
        with grpc.insecure_channel(stack.edge) as channel:
            market_pb2_grpc.MarketDataServiceStub(channel).ListInstruments(
                market_pb2.ListInstrumentsRequest(), timeout=10
            )
            trading_pb2_grpc.TradingServiceStub(channel).GetAccount(
                trading_pb2.GetAccountRequest(),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=10,
            )

        # gRPC-Web (binary), as the browser terminal sends it
        reply = client.post(
            f"/{MARKET}/GetQuote",
            content=_grpc_web_frame(market_pb2.GetQuoteRequest(symbol="NOPE").SerializeToString()),
            headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
        )
        assert reply.headers.get("grpc-status") == "5" or b"grpc-status:5" in reply.content

    expected = {
        (MARKET, "ListInstruments", "OK"): 3,
        (MARKET, "GetQuote", "NOT_FOUND"): 2,
        (AUTH, "Register", "ALREADY_EXISTS"): 1,
        (TRADING, "PlaceOrder", "INVALID_ARGUMENT"): 1,
        (TRADING, "Deposit", "OK"): 1,
        (TRADING, "GetAccount", "OK"): 1,
    }
    # A call refused with context.abort() sends its status before the server counts it: the
    # client can hold the last answer (and scrape) a moment before the counters move.
    deadline = time.monotonic() + 5
    while True:
        after = _service_calls(stack)
        handled: Counter[tuple[str, str, str]] = Counter()
        timed: Counter[tuple[str, str, str]] = Counter()
        for job in JOBS:
            handled += _handled(moved(before[job], after[job], "grpc_server_handled_total"))
            timed += _handled(moved(before[job], after[job], "grpc_server_handling_seconds_count"))
        if handled == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    envoy_after = scrape(stack.envoy_metrics_url)
    assert handled == expected
    # The latency histogram observed each of those calls once, by method.
    assert timed == {
        (MARKET, "ListInstruments", ""): 3,
        (MARKET, "GetQuote", ""): 2,
        (AUTH, "Register", ""): 1,
        (TRADING, "PlaceOrder", ""): 1,
        (TRADING, "Deposit", ""): 1,
        (TRADING, "GetAccount", ""): 1,
    }

    envoy = _envoy_method_counts(envoy_after) - _envoy_method_counts(envoy_before)
    assert {key: n for key, n in envoy.items() if key[1].isdigit()} == {
        (f"{MARKET}/ListInstruments", "0"): 3,
        (f"{MARKET}/GetQuote", "5"): 2,
        (f"{AUTH}/Register", "6"): 1,
        (f"{TRADING}/PlaceOrder", "3"): 1,
        (f"{TRADING}/Deposit", "0"): 1,
        (f"{TRADING}/GetAccount", "0"): 1,
    }

    # The engine: the deposit is one committed balance_changed event, in a group commit that
    # the commit histograms saw, and the journal moved on by the events committed.
    trading_before, trading_after = before["trading"], after["trading"]
    events = moved(trading_before, trading_after, "exness_engine_events_total")
    assert events.get(frozenset({("type", "balance_changed")})) == 1
    commits = moved(trading_before, trading_after, "exness_engine_commit_seconds_count")
    batches = moved(trading_before, trading_after, "exness_engine_commit_batch_size_count")
    assert sum(commits.values()) == sum(batches.values()) >= 1
    sequence = moved(trading_before, trading_after, "exness_engine_journal_sequence")
    assert sum(sequence.values()) == sum(events.values())


def test_an_open_stream_is_in_flight(stack: Stack) -> None:
    in_flight = {"grpc_service": MARKET, "grpc_method": "StreamQuotes"}
    with grpc.insecure_channel(stack.edge) as channel:
        stream = market_pb2_grpc.MarketDataServiceStub(channel).StreamQuotes(
            market_pb2.StreamQuotesRequest(symbols=["BTCUSD"])
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                samples = scrape(stack.metrics_url("market"))
                open_now = select(samples, "grpc_server_in_flight", **in_flight)
                if sum(open_now.values()) == 1:
                    break
                assert time.monotonic() < deadline, open_now
                time.sleep(0.2)
            assert select(samples, "exness_market_stream_subscribers") == {frozenset(): 1.0}
        finally:
            stream.cancel()
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(stack.metrics_url("market"))
        if sum(select(samples, "grpc_server_in_flight", **in_flight).values()) == 0:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert select(samples, "exness_market_stream_subscribers") == {frozenset(): 0.0}
    handled = select(samples, "grpc_server_handled_total", **in_flight, grpc_code="CANCELLED")
    assert sum(handled.values()) == 1
