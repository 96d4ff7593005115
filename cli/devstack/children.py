"""Child processes of `exness up`: each service runs as `python -m cli.main NAME` in
its own process group (so stopping it also stops anything it started), with its output in a
log file, and is judged healthy by the standard gRPC health check."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kit.rpc.probes import grpc_serving

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where `exness up` records what it started, in its data directory (read by `exness status`).
STATE_FILE = "up.json"


@dataclass(frozen=True)
class ServiceSpec:
    """One gRPC service `exness up` runs, as `exness up` and `exness status` both know it."""

    name: str  # shown in tables and logs
    command: str  # `exness <command>`; also the name of its log file
    state_key: str  # key of its host:port in STATE_FILE
    health_service: str  # grpc.health.v1 service name


SERVICES = (
    ServiceSpec("Auth", "auth", "auth", "exness.auth.v1.AuthService"),
    ServiceSpec("MarketData", "market", "market", "exness.market.v1.MarketDataService"),
    ServiceSpec("Trading", "trading", "trading", "exness.trading.v1.TradingService"),
)


class StartError(RuntimeError):
    """A component did not start; the message says which and why (with its log's tail)."""


def log_tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "(empty log)"


@dataclass
class Child:
    """One `exness <command>` process."""

    name: str
    command: Sequence[str]  # arguments after `exness`
    env: Mapping[str, str]
    log_path: Path
    # host:port and gRPC service name to health-check; None for processes without a server.
    address: str | None = None
    health_service: str = ""
    # The whole command line, for a program that is not an `exness` subcommand (Prometheus).
    argv: Sequence[str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv or [sys.executable, "-m", "cli.main", *self.command],
                env=dict(self.env),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def healthy(self) -> bool:
        if self.address is None:
            return self.exited() is None
        return grpc_serving(self.address, self.health_service)

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.exited()
            if code is not None:
                raise StartError(
                    f"{self.name} exited at start-up (code {code}); "
                    f"the end of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if self.healthy():
                return
            time.sleep(0.2)
        raise StartError(
            f"{self.name} was not healthy after {timeout_s:g}s; "
            f"the end of {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout_s: float) -> None:
        """SIGTERM to its process group (the service drains in-flight calls), SIGKILL after
        `timeout_s`; the group is killed either way so nothing it started survives it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait()
        self.signal_group(signal.SIGKILL)  # stragglers in its group, if any
