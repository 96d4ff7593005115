"""`exness status` shows each service's request rate, p99 and errors, and the oldest quote,
read from the Prometheus that `exness up` runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import grpc
import httpx
import pytest
from exness.market.v1 import market_pb2, market_pb2_grpc

from kit.rpc.interceptors import SERVICE_TOKEN_HEADER
from tests.obs.conftest import Stack
from tests.support.processes import REPO

pytestmark = pytest.mark.slow  # runs against a whole `exness up`

OLD_S = 1000  # far older than any quote another test leaves behind


def _status(stack: Stack) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "status"],
        cwd=REPO,
        env={**os.environ, "EXNESS_DATA_DIR": str(stack.data_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _row(output: str, component: str) -> list[str]:
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == component:
            return cells
    raise AssertionError(f"no {component} row in:\n{output}")


def test_status_shows_rates_latency_errors_and_the_oldest_quote(stack: Stack) -> None:
    quote = market_pb2.Quote(symbol="SOLUSD", bid="150.000", ask="150.100")
    quote.time.FromNanoseconds(time.time_ns() - OLD_S * 1_000_000_000)
    with grpc.insecure_channel(stack.state["market"]) as channel:
        reply = market_pb2_grpc.MarketDataServiceStub(channel).PublishQuotes(
            iter([market_pb2.PublishQuotesRequest(source="test", quote=quote)]),
            metadata=[(SERVICE_TOKEN_HEADER, stack.service_token)],
            timeout=10,
        )
    assert reply.accepted == 1, reply
    deadline = time.monotonic() + 45
    with httpx.Client(base_url=stack.edge_url, timeout=10) as client:
        # Calls keep coming while we look: a rate needs an increase between two scrapes.
        while True:
            for _ in range(5):
                assert client.get("/v1/instruments").status_code == 200
            output = _status(stack)
            market = _row(output, "market")
            if market[3] not in ("-", "0.00") and "SOLUSD" in output:
                break
            assert time.monotonic() < deadline, output
            time.sleep(0.5)
    _, _, health, rps, p99, errors = market
    assert health == "SERVING"
    assert float(rps) > 0
    assert p99.endswith(" ms")
    assert float(p99.removesuffix(" ms")) > 0
    assert float(errors) == 0
    age = re.search(r"oldest quote: SOLUSD (\d+\.\d) s old", output)
    assert age is not None, output
    assert OLD_S <= float(age.group(1)) < OLD_S + 120
