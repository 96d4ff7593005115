"""Users and refresh tokens in PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import Enum

import psycopg
from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True)
class UserRow:
    user_id: str
    email: str
    password_hash: str
    shard: int
    created_at: dt.datetime


class EmailTaken(Exception):
    pass


class RefreshOutcome(Enum):
    ROTATED = "rotated"
    INVALID = "invalid"  # unknown, expired or revoked
    REUSED = "reused"  # already used: the family is now revoked


_USER_COLUMNS = "user_id::text, email, password_hash, shard, created_at"


class AuthStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create_user(self, email: str, password_hash: str, shard_count: int) -> UserRow:
        user_id = uuid.uuid4()
        # The shard is fixed at registration and travels in every access token.
        shard = user_id.int % max(1, shard_count)
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "INSERT INTO users (user_id, email, password_hash, shard) VALUES (%s, %s, %s, %s)"
                    f" RETURNING {_USER_COLUMNS}",
                    (user_id, email, password_hash, shard),
                )
                row = await cur.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            raise EmailTaken(email) from exc
        assert row is not None
        return UserRow(*row)

    async def user_by_email(self, email: str) -> UserRow | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE email = %s", (email,)
            )
            row = await cur.fetchone()
        return UserRow(*row) if row else None

    async def user_by_id(self, user_id: str) -> UserRow | None:
        try:
            parsed = uuid.UUID(user_id)
        except ValueError:
            return None
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = %s", (parsed,)
            )
            row = await cur.fetchone()
        return UserRow(*row) if row else None

    async def start_family(self, user_id: str, token_hash: bytes, ttl_s: int) -> None:
        """Stores the first refresh token of a new login."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at)"
                " VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
                (token_hash, user_id, uuid.uuid4(), ttl_s),
            )

    async def rotate(
        self, old_hash: bytes, new_hash: bytes, ttl_s: int
    ) -> tuple[RefreshOutcome, UserRow | None]:
        """Uses up `old_hash` and stores its successor, atomically. A used token presented
        again revokes its whole family (someone replayed a stolen token)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT user_id, family_id, used_at IS NOT NULL, revoked_at IS NOT NULL,"
                " expires_at <= now() FROM refresh_tokens WHERE token_hash = %s FOR UPDATE",
                (old_hash,),
            )
            row = await cur.fetchone()
            if row is None:
                return RefreshOutcome.INVALID, None
            user_id, family_id, used, revoked, expired = row
            if revoked or expired:
                return RefreshOutcome.INVALID, None
            if used:
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_at = now()"
                    " WHERE family_id = %s AND revoked_at IS NULL",
                    (family_id,),
                )
                return RefreshOutcome.REUSED, None
            await conn.execute(
                "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = %s", (old_hash,)
            )
            await conn.execute(
                "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at)"
                " VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
                (new_hash, user_id, family_id, ttl_s),
            )
            cur = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = %s", (user_id,)
            )
            user = await cur.fetchone()
        return RefreshOutcome.ROTATED, UserRow(*user) if user else None

    async def revoke_family_of(self, token_hash: bytes) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND family_id ="
                " (SELECT family_id FROM refresh_tokens WHERE token_hash = %s)",
                (token_hash,),
            )
