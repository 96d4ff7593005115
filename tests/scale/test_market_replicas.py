"""Two MarketData replicas behind one Envoy cluster: quote streams spread over both, and when
one dies its subscribers reconnect (the SDK does it) and are served by the other."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from exness_client import ExnessClient

from tests.scale.conftest import MARKET_REPLICAS, Platform

pytestmark = pytest.mark.asyncio(loop_scope="session")

SUBSCRIBERS = 200


async def test_streams_spread_over_replicas_and_survive_one_dying(
    platform: Platform, clients: list[ExnessClient]
) -> None:
    client = platform.client()
    clients.append(client)
    received = [0] * SUBSCRIBERS

    async def subscribe(n: int) -> None:
        async for _ in client.stream_quotes(["BTCUSD"]):
            received[n] += 1

    tasks = [asyncio.create_task(subscribe(n)) for n in range(SUBSCRIBERS)]

    def none_gave_up() -> None:
        # A subscriber that raised would only show as "no quotes" at the deadline: say why now.
        for task in tasks:
            if task.done():
                raise AssertionError(f"a subscriber gave up: {task.exception()!r}")

    try:
        deadline = time.monotonic() + 30
        while min(received) == 0:
            none_gave_up()
            assert time.monotonic() < deadline, f"{received.count(0)} subscribers got nothing"
            await asyncio.sleep(0.2)
        spread = platform.active_requests("market")
        assert len(spread) == MARKET_REPLICAS, spread
        assert sum(spread.values()) >= SUBSCRIBERS, spread
        # Round robin: each replica serves a fair part of the streams.
        assert min(spread.values()) >= SUBSCRIBERS // 4, spread

        victim = platform.state["market_replicas"][1]
        os.kill(platform.pid("MarketData 1"), signal.SIGKILL)
        killed_at = list(received)
        deadline = time.monotonic() + 45
        while any(now <= then for now, then in zip(received, killed_at, strict=True)):
            stalled = sum(now <= then for now, then in zip(received, killed_at, strict=True))
            none_gave_up()
            assert time.monotonic() < deadline, f"{stalled} subscribers never got quotes again"
            await asyncio.sleep(0.2)
        none_gave_up()
        assert victim in platform.active_requests("market")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
