"""A whole platform started by `exness up` for a test module (free ports, own data directory),
and what tests read from it: its span files, its logs, a registered user."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import start_up, stop_up, up_env, wait_for_state

PASSWORD = "correct-horse-9-battery"


@dataclass
class Platform:
    data_dir: Path
    state: dict[str, Any]

    @property
    def url(self) -> str:
        return f"http://{self.state['edge']}"

    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        found = []
        for path in sorted((self.data_dir / "traces").glob("*.jsonl")):
            for line in path.read_text(errors="replace").splitlines():
                if trace_id in line:
                    record = json.loads(line)
                    if record["traceId"] == trace_id:
                        found.append(record)
        return found

    def all_spans(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted((self.data_dir / "traces").glob("*.jsonl")):
            for line in path.read_text(errors="replace").splitlines():
                if line.endswith("}"):
                    found.append(json.loads(line))
        return found

    def wait_spans(
        self, trace_id: str, until: Any, timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        """The trace's spans once `until(spans)` holds (exporters flush in batches)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans(trace_id)
            if until(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.2)

    def log_lines(self, service: str) -> list[dict[str, Any]]:
        lines = []
        for line in (self.data_dir / "logs" / f"{service}.log").read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


@contextmanager
def running_platform(data_dir: Path, **env: str) -> Iterator[Platform]:
    data_dir.mkdir(parents=True)
    output = data_dir.with_suffix(".out")
    process = start_up(data_dir, output, up_env(EXNESS_EDGE_AUTH_RATE_BURST="100", **env))
    try:
        yield Platform(data_dir, wait_for_state(data_dir, process, output))
    finally:
        stop_up(process)


@dataclass
class User:
    user_id: str
    access_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


async def register(api: httpx.AsyncClient, deposit: str = "10000") -> User:
    email = f"obs-{uuid.uuid4().hex[:12]}@example.com"
    reply = await api.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    user = User(body["user"]["userId"], body["tokens"]["accessToken"])
    funded = await api.post("/v1/account:deposit", json={"amount": deposit}, headers=user.auth)
    assert funded.status_code == 200, funded.text
    return user
