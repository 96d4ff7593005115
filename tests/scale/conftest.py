"""The platform in its grown shape, started ONCE for tests/scale by `exness up --shards 2
--market-replicas 2` (a subprocess on free ports, its own data directory, embedded PostgreSQL
and broker). Tests talk to it through the edge, as users do, and look at its processes, logs
and Envoy's admin statistics to see where calls went."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from exness_client import ExnessClient
from exness_client.client import RetryPolicy

from cli.devstack.children import STATE_FILE
from tests.support.processes import start_up, stop_up, up_env, wait_for_state

SHARDS = 2
MARKET_REPLICAS = 2
PASSWORD = "correct-horse-9-battery"


@dataclass
class Platform:
    data_dir: Path
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def state(self) -> dict[str, Any]:
        """Re-read: `exness up` rewrites it when it restarts a process."""
        loaded: dict[str, Any] = json.loads((self.data_dir / STATE_FILE).read_text())
        return loaded

    @property
    def edge(self) -> str:
        return str(self.state["edge"])

    def pid(self, child: str) -> int:
        return int(self.state["children"][child])

    def log(self, name: str) -> Path:
        return self.data_dir / "logs" / name

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.state['admin']}{path}", timeout=5) as reply:
            return str(reply.read().decode())

    def counter(self, name: str) -> int:
        """One of Envoy's counters (0 before it first counts)."""
        for line in self.admin(f"/stats?filter=^{name}$").splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def active_requests(self, cluster: str) -> dict[str, int]:
        """host:port -> requests (streams) open on it, from Envoy's /clusters."""
        active: dict[str, int] = {}
        for line in self.admin("/clusters").splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == cluster and parts[2] == "rq_active":
                active[parts[1]] = int(parts[3])
        return active

    def client(self, *, retry: bool = True) -> ExnessClient:
        policy = RetryPolicy() if retry else RetryPolicy(attempts=1)
        return ExnessClient(self.edge, retry=policy, timeout_s=10)

    async def user(self, client: ExnessClient, deposit: str = "100000") -> int:
        """Registers a fresh user through `client`, funds the account; returns the shard."""
        reply = await client.register(f"scale-{uuid.uuid4().hex[:12]}@example.com", PASSWORD)
        await client.deposit(deposit)
        assert reply.user is not None
        return int(reply.user.shard)

    async def user_on(self, shard: int, *, retry: bool = True) -> ExnessClient:
        """A signed-in client of a fresh user of `shard` (users are placed by their id)."""
        for _ in range(64):
            client = self.client(retry=retry)
            if await self.user(client) == shard:
                return client
            await client.close()
        raise AssertionError(f"no user landed on shard {shard} in 64 registrations")


# Stopped after the last test of this directory: a whole platform left running until the
# session ends takes CPU from every test after it.
@pytest.fixture(scope="package")
def platform(session_dir: Path) -> Iterator[Platform]:
    data_dir = session_dir / "scale-platform"
    data_dir.mkdir()
    output = session_dir / "scale-platform.out"
    env = up_env(EXNESS_LOG_LEVEL="INFO", EXNESS_EDGE_AUTH_RATE_BURST="400", COLUMNS="160")
    process = start_up(
        data_dir,
        output,
        env,
        "--shards",
        str(SHARDS),
        "--market-replicas",
        str(MARKET_REPLICAS),
    )
    try:
        wait_for_state(data_dir, process, output)
        yield Platform(data_dir, process, output)
    finally:
        stop_up(process)


@pytest.fixture
async def clients() -> AsyncIterator[list[ExnessClient]]:
    """Clients a test opens, closed after it."""
    opened: list[ExnessClient] = []
    yield opened
    for client in opened:
        await client.close()
