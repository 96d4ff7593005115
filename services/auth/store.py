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


@dataclass(frozen=True)
class Rotated:
    """A refresh token used up: its user, and the session (refresh-token family) it continues."""

    user: UserRow
    session_id: str


class RefreshOutcome(Enum):
    """Why a refresh token was not rotated."""

    INVALID = "invalid"  # unknown, expired or revoked
    REUSED = "reused"  # already used: the family is now revoked


# Qualified, so they can be selected next to refresh_tokens (both tables have created_at).
_USER_COLUMNS = (
    "users.user_id::text, users.email, users.password_hash, users.shard, users.created_at"
)
# A revoked session stays listed while access tokens of it may still be honoured: their
# lifetime plus the verifiers' clock leeway.
_REVOKE_SESSION = (
    "INSERT INTO revoked_sessions (session_id, expires_at)"
    " VALUES (%s, now() + make_interval(secs => %s)) ON CONFLICT (session_id) DO NOTHING"
)
_FORGET_EXPIRED_REVOCATIONS = "DELETE FROM revoked_sessions WHERE expires_at < now()"
TOKEN_LEEWAY_S = 60
_INSERT_REFRESH_TOKEN = (
    "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at)"
    " VALUES (%s, %s, %s, now() + make_interval(secs => %s))"
)


class AuthStore:
    def __init__(self, pool: AsyncConnectionPool, access_token_ttl_s: int = 900) -> None:
        self.pool = pool
        # How long a revoked session's access tokens could still be presented.
        self._revocation_ttl_s = access_token_ttl_s + TOKEN_LEEWAY_S

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

    async def start_family(self, user_id: str, token_hash: bytes, ttl_s: int) -> str:
        """Stores the first refresh token of a new login; the new session's id."""
        session_id = uuid.uuid4()
        async with self.pool.connection() as conn:
            await conn.execute(_INSERT_REFRESH_TOKEN, (token_hash, user_id, session_id, ttl_s))
        return str(session_id)

    async def rotate(
        self, old_hash: bytes, new_hash: bytes, ttl_s: int
    ) -> Rotated | RefreshOutcome:
        """Uses up `old_hash` and stores its successor, atomically: the token's user, or why
        not. A used token presented again revokes its whole family (someone replayed a stolen
        token)."""
        async with self.pool.connection() as conn, conn.transaction():
            # user_id is a NOT NULL foreign key (ON DELETE CASCADE): the join always finds it.
            cur = await conn.execute(
                "SELECT refresh_tokens.family_id, refresh_tokens.used_at IS NOT NULL,"
                " refresh_tokens.revoked_at IS NOT NULL, refresh_tokens.expires_at <= now(),"
                f" {_USER_COLUMNS} FROM refresh_tokens JOIN users USING (user_id)"
                " WHERE refresh_tokens.token_hash = %s FOR UPDATE OF refresh_tokens",
                (old_hash,),
            )
            row = await cur.fetchone()
            if row is None:
                return RefreshOutcome.INVALID
            family_id, used, revoked, expired, *user_columns = row
            if revoked or expired:
                return RefreshOutcome.INVALID
            if used:
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_at = now()"
                    " WHERE family_id = %s AND revoked_at IS NULL",
                    (family_id,),
                )
                await conn.execute(_REVOKE_SESSION, (family_id, self._revocation_ttl_s))
                return RefreshOutcome.REUSED
            user = UserRow(*user_columns)
            await conn.execute(
                "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = %s", (old_hash,)
            )
            await conn.execute(_INSERT_REFRESH_TOKEN, (new_hash, user.user_id, family_id, ttl_s))
        return Rotated(user, str(family_id))

    async def revoke_family_of(self, token_hash: bytes) -> None:
        """Ends the session of a refresh token: its family can no longer be refreshed, and its
        access tokens are refused (and their streams ended) by every service."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND family_id ="
                " (SELECT family_id FROM refresh_tokens WHERE token_hash = %s)"
                " RETURNING family_id",
                (token_hash,),
            )
            revoked = await cur.fetchone()
            if revoked is not None:
                await conn.execute(_FORGET_EXPIRED_REVOCATIONS)
                await conn.execute(_REVOKE_SESSION, (revoked[0], self._revocation_ttl_s))
