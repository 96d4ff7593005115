"""Watches the database from inside a service: a cheap query every second, reported into the
service's health (NOT_SERVING while PostgreSQL cannot be reached, SERVING when it answers
again). The pool replaces broken connections by itself; this only tells the truth about it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from psycopg_pool import AsyncConnectionPool

from kit.rpc.health import HealthReporter

log = logging.getLogger(__name__)

COMPONENT = "database"
INTERVAL_S = 1.0
# A ping slower than this counts as an outage (a database that hangs is as bad as one that
# refuses).
PING_TIMEOUT_S = 2.0


class DatabaseWatch:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        reporter: HealthReporter,
        interval_s: float = INTERVAL_S,
        timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        self._pool = pool
        self._reporter = reporter
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="database-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._pool.connection(timeout=self._timeout_s) as conn:
                    await conn.execute("SELECT 1")
        except Exception as exc:  # any failure to answer is an outage here
            self.failures += 1
            self._reporter.down(COMPONENT, f"PostgreSQL does not answer: {exc}")
            return False
        self._reporter.up(COMPONENT)
        return True

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval_s)
