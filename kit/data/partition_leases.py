"""A topic's partitions split among the members of a consumer through PostgreSQL leases, for
use with aiokafka's `assign()` instead of a Kafka consumer group.

Every member heartbeats in one transaction that locks the consumer's lease rows (the only
coordination: a row lock). The live members, sorted, take partition p in turn (p mod their
number). A member takes a partition only when its lease is free, expired or held by a member
that is no longer live; it gives one up by releasing it (after writing what it read), so a
handover never has two owners. A member that dies loses its leases when they expire.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

DEFAULT_TTL_S = 6.0

_HEARTBEAT_SQL = """
INSERT INTO consumer_members (consumer, topic, member, expires_at)
VALUES (%(consumer)s, %(topic)s, %(member)s, now() + %(ttl)s * interval '1 second')
ON CONFLICT (consumer, topic, member) DO UPDATE SET expires_at = excluded.expires_at
"""
_ENSURE_ROWS_SQL = """
INSERT INTO partition_leases (consumer, topic, partition)
SELECT %(consumer)s, %(topic)s, p FROM generate_series(0, %(partitions)s - 1) AS p
ON CONFLICT DO NOTHING
"""
_LOCK_SQL = """
SELECT partition, owner, expires_at < now() AS expired FROM partition_leases
WHERE consumer = %(consumer)s AND topic = %(topic)s AND partition < %(partitions)s
ORDER BY partition FOR UPDATE
"""
_LIVE_SQL = """
DELETE FROM consumer_members
WHERE consumer = %(consumer)s AND topic = %(topic)s AND expires_at < now()
"""
_MEMBERS_SQL = """
SELECT member FROM consumer_members WHERE consumer = %(consumer)s AND topic = %(topic)s
ORDER BY member
"""
_TAKE_SQL = """
UPDATE partition_leases SET owner = %(member)s,
    expires_at = now() + %(ttl)s * interval '1 second'
WHERE consumer = %(consumer)s AND topic = %(topic)s AND partition = ANY(%(take)s)
"""
_RELEASE_SQL = """
UPDATE partition_leases SET owner = NULL, expires_at = NULL
WHERE consumer = %(consumer)s AND topic = %(topic)s AND owner = %(member)s
    AND partition = ANY(%(partitions)s)
"""
_LEAVE_SQL = """
DELETE FROM consumer_members
WHERE consumer = %(consumer)s AND topic = %(topic)s AND member = %(member)s
"""


@dataclass(frozen=True)
class Share:
    """What a heartbeat decided for this member."""

    owned: frozenset[int]  # leased to this member, and its to keep
    to_release: frozenset[int]  # leased to this member, but another's turn: release them
    members: int  # live members, this one included


def default_member() -> str:
    """host-pid-random: unique, and says which process holds a lease."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def fair_share(member: str, members: list[str], partitions: int) -> set[int]:
    ranked = sorted(members)
    return {p for p in range(partitions) if ranked[p % len(ranked)] == member}


class PartitionLeases:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        consumer: str,
        topic: str,
        partitions: int,
        *,
        member: str | None = None,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        self.pool = pool
        self.member = member or default_member()
        self.partitions = partitions
        self.ttl_s = ttl_s
        self._key = {"consumer": consumer, "topic": topic, "member": self.member}

    async def heartbeat(self) -> Share:
        """Renews this member and its leases, takes the free partitions of its share."""
        params = {**self._key, "ttl": self.ttl_s, "partitions": self.partitions}
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_ENSURE_ROWS_SQL, params)
            leases = await (await conn.execute(_LOCK_SQL, params)).fetchall()
            await conn.execute(_HEARTBEAT_SQL, params)
            await conn.execute(_LIVE_SQL, params)
            members = [
                row[0] for row in await (await conn.execute(_MEMBERS_SQL, params)).fetchall()
            ]
            share = fair_share(self.member, members, self.partitions)
            live = set(members)
            held = {p for p, owner, _ in leases if owner == self.member}
            free = {
                p for p, owner, expired in leases if owner is None or expired or owner not in live
            }
            owned = (held & share) | (free & share)
            # Leases about to be released are renewed too: they are written until then.
            await conn.execute(_TAKE_SQL, {**params, "take": sorted(owned | held)})
        return Share(frozenset(owned), frozenset(held - share), len(members))

    async def release(self, partitions: set[int] | frozenset[int]) -> None:
        if not partitions:
            return
        async with self.pool.connection() as conn:
            await conn.execute(_RELEASE_SQL, {**self._key, "partitions": sorted(partitions)})

    async def leave(self) -> None:
        """Gives every lease back at once (a clean stop hands partitions on without waiting
        for expiry)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_LEAVE_SQL, self._key)
            await conn.execute(
                _RELEASE_SQL, {**self._key, "partitions": list(range(self.partitions))}
            )
