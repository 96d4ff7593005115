"""Sessions ended before their access tokens expire (Logout, a replayed refresh token).

An access token stays valid until its `exp`, but it names its session (the `sid` claim, the
login's refresh-token family). Auth lists a revoked session in `revoked_sessions` until the
last access token of that session has expired; every service follows that table and refuses
tokens of a listed session, and ends the server streams opened with one (they would otherwise
run on until the token's expiry, up to its whole lifetime after the user logged out).

The table is polled (by when rows were written, with an overlap for transactions that commit
out of order): one small indexed query a second per process, and nothing to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
# Rows are read again for this long after they were written: a transaction that took its
# timestamp earlier but committed after a later one is not missed.
OVERLAP = timedelta(seconds=30)

_READ = (
    "SELECT session_id::text, revoked_at, extract(epoch FROM expires_at)"
    " FROM revoked_sessions WHERE revoked_at > %s AND expires_at > now()"
)


class RevokedSessions:
    """The revoked sessions this process knows of, and who wants to hear of a revocation."""

    def __init__(self, pool: AsyncConnectionPool, poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self._pool = pool
        self._poll_interval_s = poll_interval_s
        self._revoked: dict[str, float] = {}  # session id -> until (Unix time)
        self._watchers: dict[str, set[Callable[[], None]]] = {}
        self._since = datetime.fromtimestamp(0, UTC)
        self._task: asyncio.Task[None] | None = None

    def is_revoked(self, session_id: str) -> bool:
        until = self._revoked.get(session_id)
        return until is not None and until > time.time()

    def watch(self, session_id: str, on_revoked: Callable[[], None]) -> Callable[[], None]:
        """Calls `on_revoked` once the session is revoked; returns how to stop watching."""
        watchers = self._watchers.setdefault(session_id, set())
        watchers.add(on_revoked)

        def unwatch() -> None:
            watchers.discard(on_revoked)
            if not watchers and self._watchers.get(session_id) is watchers:
                del self._watchers[session_id]

        return unwatch

    async def refresh(self) -> None:
        """Reads what was revoked since the last read and tells the watchers."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(_READ, (self._since - OVERLAP,))
            rows = await cur.fetchall()
        now = time.time()
        self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
        for session_id, revoked_at, until in rows:
            self._since = max(self._since, revoked_at)
            if session_id in self._revoked:
                continue
            self._revoked[session_id] = float(until)
            for on_revoked in list(self._watchers.get(session_id, ())):
                on_revoked()

    async def _follow(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the database is away: keep what we know, try again
                log.warning("cannot read revoked sessions: %s", exc)
            await asyncio.sleep(self._poll_interval_s)

    async def start(self) -> None:
        """Reads the current list once (a fresh process must not honour a revoked session),
        then follows it in the background."""
        with contextlib.suppress(Exception):
            await self.refresh()
        self._task = asyncio.create_task(self._follow(), name="revoked-sessions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
