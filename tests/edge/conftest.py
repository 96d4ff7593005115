"""The whole platform behind a real Envoy, started ONCE for tests/edge by `exness up` itself
(a subprocess on free ports, its own data directory): embedded PostgreSQL and broker,
migrations, Auth, MarketData, the engine, the synthetic feed and Envoy. Tests talk to it only
through the edge, as users do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.infra import free_port

REPO = Path(__file__).resolve().parents[2]
# Generous for the suite (many users register from 127.0.0.1); the rate-limit test exhausts
# the bucket of another loopback address.
AUTH_RATE_BURST = 40
START_TIMEOUT_S = 150.0


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


def up_command(data_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "services.cli.main",
        "up",
        "--data-dir",
        str(data_dir),
        "--edge-port",
        str(free_port()),
        "--admin-port",
        str(free_port()),
        "--auth-port",
        str(free_port()),
        "--market-port",
        str(free_port()),
        "--engine-port",
        str(free_port()),
        "--postgres-port",
        str(free_port()),
        "--kafka-port",
        str(free_port()),
        *extra,
    ]


def up_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update(
        {
            "EXNESS_EDGE_AUTH_RATE_BURST": str(AUTH_RATE_BURST),
            "EXNESS_LOG_LEVEL": "INFO",
            "COLUMNS": "160",
            **extra,
        }
    )
    return env


def wait_for_state(
    data_dir: Path,
    process: subprocess.Popen[bytes],
    output: Path,
    timeout_s: float = START_TIMEOUT_S,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state_path = data_dir / "up.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"exness up exited ({process.returncode}):\n"
                f"{output.read_text(errors='replace')[-4000:]}"
            )
        if state_path.exists():
            state: dict[str, Any] = json.loads(state_path.read_text())
            return state
        time.sleep(0.2)
    raise AssertionError(
        f"exness up not ready in {timeout_s}s:\n{output.read_text(errors='replace')[-4000:]}"
    )


def stop_up(process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


@pytest.fixture(scope="session")
def stack(session_dir: Path) -> Iterator[Stack]:
    data_dir = session_dir / "edge-platform"
    data_dir.mkdir()
    output = session_dir / "edge-platform.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            up_command(data_dir),
            cwd=REPO,
            env=up_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
