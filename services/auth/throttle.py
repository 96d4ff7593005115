"""Per-account backoff after failed logins.

After `free_failures` wrong passwords for an email, each further failure blocks logins to it
for twice as long as the previous one (from `base_s`, at most `max_s`); a correct login resets
the count, and a count idle for `forget_s` starts again. While blocked, every login to that
email is refused before the password is even checked, with the same answer whether the email
is registered or not. The state is in PostgreSQL: it holds across restarts and replicas, and
on the Auth port itself, not only behind the edge's per-address rate limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import grpc
from psycopg_pool import AsyncConnectionPool

from kit.rpc.errors import ServiceError
from kit.settings import env_float, env_int

_STATE = "SELECT extract(epoch FROM blocked_until - now()) FROM login_failures WHERE email = %s"

# One statement, so concurrent failures all count. The exponent is capped before power() so
# a long run of failures cannot overflow.
_RECORD_FAILURE = """
INSERT INTO login_failures AS f (email, failures, last_failure_at, blocked_until)
VALUES (%(email)s, 1, now(), now())
ON CONFLICT (email) DO UPDATE SET
    failures = CASE WHEN f.last_failure_at < now() - make_interval(secs => %(forget_s)s)
               THEN 1 ELSE f.failures + 1 END,
    last_failure_at = now()
RETURNING failures
"""

_BLOCK = """
UPDATE login_failures SET blocked_until = now() + make_interval(secs => %(seconds)s)
WHERE email = %(email)s
"""

_FORGET = "DELETE FROM login_failures WHERE email = %s"


@dataclass(frozen=True)
class LoginBackoff:
    free_failures: int = 5
    base_s: float = 1.0
    max_s: float = 900.0
    forget_s: float = 3600.0

    @classmethod
    def from_env(cls) -> LoginBackoff:
        default = cls()
        return cls(
            free_failures=env_int("EXNESS_LOGIN_FREE_FAILURES", default.free_failures),
            base_s=env_float("EXNESS_LOGIN_BACKOFF_BASE", default.base_s),
            max_s=env_float("EXNESS_LOGIN_BACKOFF_MAX", default.max_s),
            forget_s=env_float("EXNESS_LOGIN_BACKOFF_FORGET", default.forget_s),
        )

    def delay_after(self, failures: int) -> float:
        """Seconds a login stays blocked after the `failures`-th failure in a row."""
        extra = failures - self.free_failures
        if extra <= 0:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(extra - 1, 40))


def too_many_failures(retry_after_s: float) -> ServiceError:
    seconds = max(1, math.ceil(retry_after_s))
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "LOGIN_THROTTLED",
        f"too many failed logins for this email: try again in {seconds} s",
        {"retry_after_s": str(seconds)},
    )


class LoginThrottle:
    def __init__(self, pool: AsyncConnectionPool, policy: LoginBackoff | None = None) -> None:
        self.pool = pool
        self.policy = policy or LoginBackoff()

    async def check(self, email: str) -> bool:
        """Raises RESOURCE_EXHAUSTED while logins to `email` are blocked; else whether failures
        are on record (a success then clears them)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_STATE, (email,))
            row = await cur.fetchone()
        if row is None:
            return False
        if row[0] > 0:
            raise too_many_failures(float(row[0]))
        return True

    async def failed(self, email: str) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                _RECORD_FAILURE, {"email": email, "forget_s": self.policy.forget_s}
            )
            row = await cur.fetchone()
            assert row is not None
            seconds = self.policy.delay_after(int(row[0]))
            if seconds > 0:
                await conn.execute(_BLOCK, {"email": email, "seconds": seconds})

    async def succeeded(self, email: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(_FORGET, (email,))
