"""Traces across the mesh on a platform started by `exness up`.

One PlaceOrder through Envoy with a client's `traceparent`: Envoy continues the trace, the
Trading service's spans (the call, validation, the engine, the group commit, the relay's
publish) carry the same trace id and nest under each other, the relayed Kafka record's headers
carry it (read by kcat), the request's log lines name it, and `exness trace` prints it.

A quote of the poller: one trace from the poller through PublishQuotes and `market.quotes` to
MarketData's fan-out and the engine."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from typing import Any

import httpx

from kit.data.kafka import EVENTS_TOPIC
from tests.support.kcat import read_topic
from tests.support.platform import Platform, register
from tests.support.processes import REPO

PLACE_ORDER = "exness.trading.v1.TradingService/PlaceOrder"


def _by_name(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matching = [s for s in spans if s["name"] == name]
    assert len(matching) == 1, (name, [s["name"] for s in spans])
    return matching[0]


def _complete(spans: list[dict[str, Any]]) -> bool:
    names = {s["name"] for s in spans}
    services = {s["service"] for s in spans}
    return "edge" in services and {"group commit", f"{EVENTS_TOPIC} publish"} <= names


async def test_place_order_is_one_trace_from_the_edge_to_the_topic(
    platform: Platform, api: httpx.AsyncClient
) -> None:
    user = await register(api)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {**user.auth, "traceparent": f"00-{trace_id}-{caller_span}-01"}
    order = {"symbol": "BTCUSD", "side": "ORDER_SIDE_BUY", "type": "ORDER_TYPE_MARKET"}
    placed = await api.post("/v1/orders", headers=headers, json={**order, "volume": "0.01"})
    assert placed.status_code == 200, placed.text

    spans = await asyncio.to_thread(platform.wait_spans, trace_id, _complete)
    assert _complete(spans), [(s["service"], s["name"]) for s in spans]
    # Envoy continued the caller's trace; the service continued Envoy's.
    edge = [s for s in spans if s["service"] == "edge"]
    assert [s["parentSpanId"] for s in edge] == [caller_span]
    server = _by_name(spans, PLACE_ORDER)
    assert server["service"] == "trading"
    assert server["kind"] == "SERVER"
    assert server["parentSpanId"] == edge[0]["spanId"]
    assert server["attributes"]["rpc.grpc.status_code"] == 0
    # Validation, the engine and the commit inside the call; the relay's publish after it.
    validate = _by_name(spans, "validate request")
    engine = _by_name(spans, "engine place_order")
    commit = _by_name(spans, "group commit")
    publish = _by_name(spans, f"{EVENTS_TOPIC} publish")
    assert validate["parentSpanId"] == engine["parentSpanId"] == server["spanId"]
    assert commit["parentSpanId"] == server["spanId"]
    assert commit["startTimeUnixNano"] >= engine["endTimeUnixNano"]
    assert commit["endTimeUnixNano"] <= server["endTimeUnixNano"]
    assert publish["parentSpanId"] == commit["spanId"]
    assert publish["kind"] == "PRODUCER"
    assert publish["startTimeUnixNano"] >= commit["endTimeUnixNano"]

    # The order's relayed records (its fill and the position it opened) carry the trace: their
    # traceparent names the publish span.
    # kcat prints every header of a record (the shard's too), comma-separated.
    wanted = f"traceparent=00-{trace_id}-{publish['spanId']}-01".encode()
    records: list[bytes] = []
    for _ in range(50):
        records = await read_topic(platform.state["kafka"], EVENTS_TOPIC, "%h\\n")
        if sum(wanted in record.split(b",") for record in records) >= 2:
            break
        await asyncio.sleep(0.2)
    assert sum(wanted in record.split(b",") for record in records) == 2, records[-5:]

    # The request's log lines name the trace and Envoy's request id (as its access log does).
    request_id = server["attributes"]["exness.request_id"]
    lines = [line for line in platform.log_lines("trading") if line.get("trace_id") == trace_id]
    assert lines, "no log line of the request names its trace"
    assert all(line["request_id"] == request_id for line in lines)
    assert any(line.get("method") == f"/{PLACE_ORDER}" for line in lines)
    # Envoy writes its access log through a buffer it flushes every few seconds: wait for it.
    access_log = platform.data_dir / "logs" / "edge-access.log"
    needle = f'"request_id":"{request_id}"'
    for _ in range(150):
        if needle in access_log.read_text().replace(" ", ""):
            break
        await asyncio.sleep(0.1)
    assert needle in access_log.read_text().replace(" ", ""), "the access log lacks the request"

    # `exness trace ID` shows it as one waterfall (and finds it by the request id too).
    for key in (trace_id, request_id):
        shown = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cli.main", "trace", key, "--data-dir", str(platform.data_dir)],
            cwd=REPO,
            env={**os.environ, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        for name in (PLACE_ORDER, "engine place_order", "group commit", "edge"):
            assert name in shown.stdout, shown.stdout


QUOTE_HOPS = ("quote send", "PublishQuotes quote", "market.quotes fan-out", "engine on_quote")


def _quote_traces(spans: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_trace.setdefault(span["traceId"], []).append(span)
    return [trace for trace in by_trace.values() if set(QUOTE_HOPS) <= {s["name"] for s in trace}]


async def test_a_quote_is_one_trace_from_the_poller_to_the_fan_out(platform: Platform) -> None:
    traces: list[list[dict[str, Any]]] = []
    for _ in range(100):
        traces = _quote_traces(await asyncio.to_thread(platform.all_spans))
        if traces:
            break
        await asyncio.sleep(0.2)
    assert traces, "no quote was traced from the poller to the fan-out and the engine"
    trace = traces[0]
    sent, published, fanned, applied = (_by_name(trace, name) for name in QUOTE_HOPS)
    assert (sent["service"], sent["kind"]) == ("poller", "PRODUCER")
    assert published["service"] == "market"
    assert published["parentSpanId"] == sent["spanId"]
    # The Kafka record carried MarketData's span to both consumers of market.quotes.
    assert (fanned["service"], fanned["kind"]) == ("market", "CONSUMER")
    assert (applied["service"], applied["kind"]) == ("trading", "CONSUMER")
    assert fanned["parentSpanId"] == applied["parentSpanId"] == published["spanId"]
    assert sent["attributes"]["exness.symbol"] == published["attributes"]["exness.symbol"]
