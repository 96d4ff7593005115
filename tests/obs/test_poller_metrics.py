"""The poller's metrics while it feeds MarketData: quotes by source and bad messages by
reason, scraped from the running process."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.obs.conftest import Stack
from tests.obs.scrape import scrape, select
from tests.support.infra import free_port
from tests.support.processes import start_exness

pytestmark = pytest.mark.slow  # runs against a whole `exness up`

QUOTES = 25
RATE = 5.0  # quotes/s: the replay lasts 5 s, long enough to scrape it mid-way


def _tape(path: Path) -> None:
    start = datetime.now(UTC)
    lines = ["not json at all", json.dumps({"symbol": "XAUUSD", "bid": 2400})]  # 2 malformed
    for i in range(QUOTES):
        when = (start + timedelta(milliseconds=100 * i)).isoformat().replace("+00:00", "Z")
        lines.append(
            json.dumps({"symbol": "XAUUSD", "bid": "2400.10", "ask": "2400.40", "time": when})
        )
    path.write_text("\n".join(lines) + "\n")


def test_the_poller_counts_quotes_and_bad_messages(stack: Stack, tmp_path: Path) -> None:
    tape = tmp_path / "tape.jsonl"
    _tape(tape)
    port = free_port()
    env = {
        "EXNESS_DATA_DIR": str(stack.data_dir),  # its service token
        "EXNESS_MARKET_ADDR": stack.state["market"],
        "EXNESS_POLLER_METRICS_PORT": str(port),
        "EXNESS_BIND_HOST": "127.0.0.1",
        "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
    }
    poller = start_exness(
        ["poller", "--source", "replay", "--tape", str(tape), "--rate", str(RATE)],
        env,
        tmp_path / "poller.log",
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 30
        while True:
            assert poller.poll() is None, (tmp_path / "poller.log").read_text()
            try:
                samples = scrape(url)
            except OSError:
                samples = {}
            quotes = sum(select(samples, "exness_poller_quotes_total", source="replay").values())
            if quotes >= 3:
                break
            assert time.monotonic() < deadline, "the poller's metrics never showed quotes"
            time.sleep(0.3)
        assert quotes < QUOTES  # seen while it runs, not after the fact
        bad = select(samples, "exness_poller_bad_messages_total", source="replay")
        assert {dict(k)["reason"]: v for k, v in bad.items()} == {"malformed": 2}
        received = select(samples, "exness_poller_messages_received_total", source="replay")
        assert sum(received.values()) >= quotes + 2
        reconnects = select(samples, "exness_poller_reconnects_total", source="replay")
        assert {dict(k)["link"]: v for k, v in reconnects.items()} == {
            "exchange": 0.0,
            "market": 0.0,
        }
        assert poller.wait(30) == 0, (tmp_path / "poller.log").read_text()
    finally:
        if poller.poll() is None:
            poller.kill()
            poller.wait()
