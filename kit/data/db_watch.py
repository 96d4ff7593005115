"""Watches the database from inside a service: a cheap query every second, reported into the
service's health (NOT_SERVING while PostgreSQL cannot be reached, SERVING when it answers
again). It keeps a connection of its own rather than borrowing from the pool: the pool hides a
restart by quietly replacing broken connections, while a broken connection here is an outage
seen (a restarted server also lost every transaction in flight), reported for one interval
at least."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

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
        url: str,
        reporter: HealthReporter,
        interval_s: float = INTERVAL_S,
        timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
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
        await self._close()

    async def check(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._conn is None:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._url, autocommit=True, connect_timeout=int(self._timeout_s) or 1
                    )
                await self._conn.execute("SELECT 1")
        except Exception as exc:  # any failure to answer is an outage here
            self.failures += 1
            self._reporter.down(COMPONENT, f"PostgreSQL does not answer: {exc}")
            await self._close()
            return False
        self._reporter.up(COMPONENT)
        return True

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval_s)
