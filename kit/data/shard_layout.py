"""The shard count is a property of the data (users are placed by user id mod the count; ids
carry their shard), so it is recorded in PostgreSQL by the first process that starts, and every
later start must agree with it."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from kit.rpc.errors import StartupError

RESHARDING = (
    "re-sharding an existing database is not supported: start with the count it was created "
    "with, or use a fresh database"
)


async def check_shard_count(
    pool: AsyncConnectionPool, shard_count: int, shard_id: int | None = None
) -> None:
    """Records `shard_count` on first start; raises StartupError when the database was created
    with another count, or when `shard_id` is not one of its shards."""
    if shard_count < 1:
        raise StartupError(f"EXNESS_SHARD_COUNT must be at least 1, got {shard_count}")
    if shard_id is not None and not 0 <= shard_id < shard_count:
        raise StartupError(
            f"EXNESS_SHARD_ID {shard_id} is not a shard of {shard_count} (0..{shard_count - 1})"
        )
    async with pool.connection() as conn:
        # Users registered before the count was recorded are on shards below their count.
        cur = await conn.execute(
            "INSERT INTO shard_layout (shard_count)"
            " SELECT %s WHERE NOT EXISTS (SELECT 1 FROM users WHERE shard >= %s)"
            " ON CONFLICT DO NOTHING",
            (shard_count, shard_count),
        )
        cur = await conn.execute("SELECT shard_count FROM shard_layout")
        row = await cur.fetchone()
    if row is None:
        raise StartupError(
            f"the database already has users on shards beyond {shard_count - 1}; {RESHARDING}"
        )
    if int(row[0]) != shard_count:
        raise StartupError(
            f"the database was created with {row[0]} engine shard(s), this process was started "
            f"with {shard_count} (EXNESS_SHARD_COUNT / exness up --shards); {RESHARDING}"
        )
