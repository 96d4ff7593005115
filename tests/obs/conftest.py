"""One `exness up` (free ports, its own data directory) for the tracing tests, with spans
exported quickly, every quote traced and the services' request log lines on (DEBUG)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.platform import Platform, running_platform


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
