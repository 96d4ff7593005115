"""Emails and passwords: normalisation, the password policy and argon2id hashing."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kit.rpc.errors import invalid_field

PASSWORD_MIN_LEN = 10
# The maximum (128: argon2 is no place to feed megabytes) is a rule in auth.proto, enforced
# by the request pipeline before a servicer runs.

# argon2id with the library's RFC 9106 "low memory" defaults (t=3, m=64 MiB, p=4).
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not a real password, only for constant-time failures")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_policy(password: str) -> None:
    if len(password) < PASSWORD_MIN_LEN:
        raise invalid_field(
            "password", f"must be at least {PASSWORD_MIN_LEN} characters", reason="WEAK_PASSWORD"
        )
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        raise invalid_field(
            "password", "must contain at least one letter and one digit", reason="WEAK_PASSWORD"
        )
    if password != password.strip():
        raise invalid_field(
            "password", "must not start or end with white space", reason="WEAK_PASSWORD"
        )


async def hash_password(password: str) -> str:
    # Hashing takes tens of milliseconds of CPU: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return (
                bool(_hasher.verify(password_hash or _DUMMY_HASH, password))
                and password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)
