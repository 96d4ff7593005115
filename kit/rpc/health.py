"""What a service can do right now, as its grpc.health.v1 status.

Components (database watch, quote feed, relay, commit path...) report into one HealthReporter:
`down(name, why)` when they cannot do their job, `up(name)` when they can again. The service is
SERVING while every component is up and NOT_SERVING while any is down, so `exness up` and the
edge's health checks keep traffic away from a process that would only answer with errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Outage:
    component: str
    reason: str
    since: float  # time.monotonic()


class HealthReporter:
    """The components that are down, and the health servicer that publishes the verdict
    for `service_names` (plus "" for the whole server) once attached."""

    def __init__(self) -> None:
        self._outages: dict[str, Outage] = {}
        self._servicer: health.aio.HealthServicer | None = None
        self._names: list[str] = []
        self._published: int | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.transitions = 0  # SERVING <-> NOT_SERVING changes, for logs and tests

    @property
    def serving(self) -> bool:
        return not self._outages

    def outages(self) -> list[Outage]:
        return list(self._outages.values())

    def down(self, component: str, reason: str) -> None:
        if component not in self._outages:
            log.warning("health: %s is down: %s", component, reason)
            self._outages[component] = Outage(component, reason, time.monotonic())
            self._publish()

    def up(self, component: str) -> None:
        outage = self._outages.pop(component, None)
        if outage is not None:
            log.warning(
                "health: %s is up again after %.1fs",
                component,
                time.monotonic() - outage.since,
            )
            self._publish()

    async def attach(self, servicer: health.aio.HealthServicer, names: Iterable[str]) -> None:
        """Publishes the current verdict now and every change from here on."""
        self._servicer = servicer
        self._names = [*names, ""]
        self._published = None
        await self._sync()

    def detach(self) -> None:
        """The server is stopping: it publishes NOT_SERVING itself from now on."""
        self._servicer = None

    def _status(self) -> int:
        return SERVING if self.serving else NOT_SERVING

    def _publish(self) -> None:
        if self._servicer is None:
            return
        # The status is read when the task runs, so the last change always wins.
        task = asyncio.get_running_loop().create_task(self._sync())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _sync(self) -> None:
        status = self._status()
        servicer = self._servicer
        if servicer is None or status == self._published:
            return
        if self._published is not None:
            self.transitions += 1
        self._published = status
        for name in self._names:
            await servicer.set(name, status)
