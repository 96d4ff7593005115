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

from aiokafka.admin import AIOKafkaAdminClient

from kit.data.kafka import ADMIN_ERRORS, create_missing_topics, make_admin
from kit.rpc.health import HealthReporter

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 2.0
COMPONENT = "broker"


class TopicGuard:
    def __init__(
        self,
        bootstrap: str,
        interval_s: float = CHECK_INTERVAL_S,
        reporter: HealthReporter | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        # Each round's outcome is the service's view of its broker.
        self._reporter = reporter or HealthReporter()
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
        # One admin client for all rounds; after a failure it is replaced by a new one (the
        # restarted broker may have forgotten our connection and its metadata).
        admin: AIOKafkaAdminClient | None = None
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                try:
                    if admin is None:
                        admin = make_admin(self._bootstrap)
                        await asyncio.wait_for(admin.start(), self._interval_s)
                    created = await asyncio.wait_for(create_missing_topics(admin), self._interval_s)
                    if created:  # the broker restarted empty: what was in flight is lost
                        self._reporter.down(COMPONENT, f"the broker had lost {created}")
                    else:
                        self._reporter.up(COMPONENT)
                except (*ADMIN_ERRORS, TimeoutError) as exc:  # broker down: try next round
                    log.debug("topic check failed: %s", exc)
                    self._reporter.down(COMPONENT, f"the broker does not answer: {exc!r}")
                    if admin is not None:
                        await _close(admin)
                        admin = None
        finally:
            if admin is not None:
                await _close(admin)


async def _close(admin: AIOKafkaAdminClient) -> None:
    try:
        await admin.close()
    except Exception as exc:  # a client that never connected may fail to close cleanly
        log.debug("closing the admin client failed: %s", exc)
