"""The whole platform behind a real Envoy, started ONCE for tests/edge by `exness up` itself
(a subprocess on free ports, its own data directory): embedded PostgreSQL and broker,
migrations, Auth, MarketData, the engine, the synthetic feed and Envoy. Tests talk to it only
through the edge, as users do."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.auth.keys import thumbprint
from tests.support.processes import start_up, stop_up, up_env, wait_for_state

# Generous for the suite (many users register from 127.0.0.1); the rate-limit test exhausts
# the bucket of another loopback address.
AUTH_RATE_BURST = 40
LOGIN_BACKOFF_BASE_S = 30


@dataclass
class Stack:
    data_dir: Path
    process: subprocess.Popen[bytes]
    output: Path
    state: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://{self.state['edge']}"

    @property
    def edge(self) -> str:
        return str(self.state["edge"])

    def output_text(self) -> str:
        return self.output.read_text(errors="replace")


def edge_env(**extra: str) -> dict[str, str]:
    """The environment of the `exness up` runs of tests/edge."""
    return up_env(
        EXNESS_EDGE_AUTH_RATE_BURST=str(AUTH_RATE_BURST),
        # Long enough that a test sees the block before it lifts, even on a busy machine.
        EXNESS_LOGIN_BACKOFF_BASE=str(LOGIN_BACKOFF_BASE_S),
        EXNESS_LOG_LEVEL="INFO",
        COLUMNS="160",  # wide enough that the table cells tests grep for are not wrapped
        **extra,
    )


@pytest.fixture(scope="session")
def stack(session_dir: Path) -> Iterator[Stack]:
    data_dir = session_dir / "edge-platform"
    data_dir.mkdir()
    output = session_dir / "edge-platform.out"
    process = start_up(data_dir, output, edge_env())
    try:
        state = wait_for_state(data_dir, process, output)
        yield Stack(data_dir, process, output, state)
    finally:
        stop_up(process)


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, trust_env=False, timeout=15) as client:
        yield client


PASSWORD = "correct-horse-9-battery"


@dataclass
class User:
    email: str
    user_id: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


async def register(api: httpx.AsyncClient, deposit: str | None = "10000") -> User:
    email = f"edge-{uuid.uuid4().hex[:12]}@example.com"
    reply = await api.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    user = User(
        email, body["user"]["userId"], body["tokens"]["accessToken"], body["tokens"]["refreshToken"]
    )
    if deposit:
        funded = await api.post("/v1/account:deposit", json={"amount": deposit}, headers=user.auth)
        assert funded.status_code == 200, funded.text
    return user


@pytest.fixture
async def user(api: httpx.AsyncClient) -> User:
    return await register(api)


def signing_key(stack: Stack) -> tuple[str, Ed25519PrivateKey]:
    """Auth's own key (from the platform's data directory) and the kid the JWKS gives it."""
    pem = sorted((stack.data_dir / "keys").glob("*.pem"))[-1]
    key = serialization.load_pem_private_key(Path(pem).read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return thumbprint(key.public_key()), key


def token_claims(user: User, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": "exness-auth",
        "aud": "exness-api",
        "sub": user.user_id,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "shard": 0,
        **overrides,
    }


def short_lived_token(stack: Stack, user: User, lifetime_s: int) -> tuple[str, int]:
    """An access token for `user`, signed with Auth's real key, valid for `lifetime_s`; and
    its expiry (Unix seconds)."""
    kid, key = signing_key(stack)
    expires_at = int(time.time()) + lifetime_s
    claims = token_claims(user, exp=expires_at)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid}), expires_at
