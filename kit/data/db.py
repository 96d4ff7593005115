"""PostgreSQL access: one async connection pool per service process."""

from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool

from kit.rpc.errors import StartupError

# How long a request waits for a connection. While PostgreSQL is down no connection comes,
# and a call should fail with UNAVAILABLE in a few seconds rather than hang to its deadline.
CONNECTION_WAIT_S = 3.0


async def open_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "",
    wait_s: float = CONNECTION_WAIT_S,
) -> AsyncConnectionPool:
    """An open pool; waits until the first connection works, so a wrong DATABASE_URL fails at
    start-up with a clear message rather than on the first request."""
    pool: AsyncConnectionPool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name or None,
        kwargs={"autocommit": False, "connect_timeout": 3},
        timeout=wait_s,
        # Reconnection attempts go on for as long as the outage lasts.
        reconnect_timeout=24 * 3600,
        # A connection broken by a database restart is replaced instead of handed out.
        check=AsyncConnectionPool.check_connection,
    )
    try:
        await pool.open(wait=True, timeout=30)
    except Exception as exc:
        await pool.close()
        raise StartupError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
    return pool


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable url>"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in info.items())
