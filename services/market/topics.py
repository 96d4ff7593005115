"""Keeps the Kafka topics in existence.

The embedded broker (Tansu) keeps everything in memory: after a restart it has forgotten the
topics too, and nothing flows until they exist again (with their partition counts). MarketData
checks every few seconds and re-creates what is missing; against a real Kafka the check finds
everything in place and does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.kit.kafka import ensure_topics

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 2.0


class TopicGuard:
    def __init__(self, bootstrap: str, interval_s: float = CHECK_INTERVAL_S) -> None:
        self._bootstrap = bootstrap
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="topic-guard")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await ensure_topics(self._bootstrap, timeout_s=self._interval_s)
            except RuntimeError as exc:  # broker down: the next round tries again
                log.debug("topic check failed: %s", exc)
