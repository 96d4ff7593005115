"""The observability tests' platforms, each an `exness up` on free ports with its own data
directory. `stack` (metrics): no price feed (the tests publish the quotes they need),
Prometheus scraping every second, alerts firing after 1 s, quotes stale after 3 s, a partition
stalled after 8 s. `platform` (tracing): spans exported quickly, every quote traced and the
services' request log lines on (DEBUG)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.platform import Platform, running_platform
from tests.support.processes import start_up, stop_up, up_env, wait_for_state

MAX_QUOTE_AGE_S = 3
STALL_WINDOW_S = 8


@dataclass
class Stack:
    state: dict[str, Any]
    data_dir: Path

    @property
    def edge(self) -> str:
        return str(self.state["edge"])

    @property
    def edge_url(self) -> str:
        return f"http://{self.edge}"

    @property
    def prometheus(self) -> str:
        return str(self.state["prometheus"])

    def metrics_url(self, job: str) -> str:
        return f"http://{self.state['metrics'][job]}/metrics"

    @property
    def envoy_metrics_url(self) -> str:
        return f"http://{self.state['admin']}/stats/prometheus"

    @property
    def service_token(self) -> str:
        return (self.data_dir / "service-token").read_text().strip()


# Stopped after the last test of this directory: a whole platform left running until the
# session ends takes CPU from every test after it.
@pytest.fixture(scope="package")
def stack(session_dir: Path) -> Iterator[Stack]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (scripts/test.sh installs it with apt-get)")
    root = session_dir / "obs"
    root.mkdir()
    data_dir = root / "data"
    output = root / "up.log"
    env = up_env(EXNESS_MAX_QUOTE_AGE=str(MAX_QUOTE_AGE_S))
    process = start_up(
        data_dir,
        output,
        env,
        *("--feed", "none", "--scrape-interval", "1", "--alert-for", "1s"),
        *("--stall-window", f"{STALL_WINDOW_S}s"),
    )
    try:
        state = wait_for_state(data_dir, process, output)
        yield Stack(state, data_dir)
    finally:
        stop_up(process)


@pytest.fixture(scope="module")
def platform(session_dir: Path, request: pytest.FixtureRequest) -> Iterator[Platform]:
    with running_platform(
        session_dir / f"obs-{request.module.__name__.rsplit('.', 1)[-1]}",
        EXNESS_LOG_LEVEL="DEBUG",
        OTEL_BSP_SCHEDULE_DELAY="100",
        EXNESS_QUOTE_TRACE_RATIO="1",  # every quote of the synthetic feed is traced
        EXNESS_TRACE_RATIO="1",
        EXNESS_EDGE_TRACE_PERCENT="100",
    ) as platform:
        yield platform


@pytest.fixture
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=15) as client:
        yield client
