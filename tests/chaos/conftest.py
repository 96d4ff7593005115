"""One `exness up` (embedded PostgreSQL and broker, every port free) for the chaos suite, with
short limits so faults are found and recovered from within seconds, and a stalled-partition
fault armed for MarketData's first fan-out consumer."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from cli.devstack.children import STATE_FILE
from kit.data.faults import STALL_ENV
from kit.data.kafka import QUOTES_TOPIC, TOPIC_PARTITIONS
from services.market.hub_feed import FANOUT_CLIENT_ID
from tests.support.processes import start_up, stop_up, up_env, wait_for_state

# The symbol whose partition the armed fault stalls.
STALLED_SYMBOL = "BTCUSD"
STALL_AFTER_S = 4


def partition_of(symbol: str) -> int:
    partitions = list(range(TOPIC_PARTITIONS[QUOTES_TOPIC]))
    return int(DefaultPartitioner()(symbol.encode(), partitions, partitions))


@dataclass
class Platform:
    data_dir: Path
    output: Path

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.data_dir / STATE_FILE).read_text())
        return state

    def log(self, name: str) -> str:
        return (self.data_dir / "logs" / name).read_text(errors="replace")

    def output_text(self) -> str:
        return self.output.read_text(errors="replace")

    def addresses(self) -> dict[str, str]:
        state = self.state()
        return {key: state[key] for key in ("auth", "market", "trading")}

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="package")
def platform(session_dir: Path) -> Iterator[Platform]:
    root = session_dir / "chaos"
    root.mkdir()
    data_dir, output = root / "data", root / "up.out"
    env = up_env(
        EXNESS_UNHEALTHY_LIMIT_S="20",
        EXNESS_STALL_AFTER_S=str(STALL_AFTER_S),
        **{STALL_ENV: f"{FANOUT_CLIENT_ID}:{partition_of(STALLED_SYMBOL)}"},
        EXNESS_LOG_FORMAT="text",
        COLUMNS="160",
    )
    started = time.monotonic()
    process = start_up(data_dir, output, env)
    try:
        wait_for_state(data_dir, process, output)
        print(f"exness up ready in {time.monotonic() - started:.1f}s")
        yield Platform(data_dir, output)
    finally:
        code = stop_up(process)
        assert code == 0, output.read_text(errors="replace")[-3000:]
