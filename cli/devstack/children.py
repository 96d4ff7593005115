"""Child processes of `exness up`: each service runs as `python -m cli.main NAME` in
its own process group (so stopping it also stops anything it started), with its output in a
log file, and is judged healthy by the standard gRPC health check."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kit.processes import (
    StartError,
    kill_group,
    log_tail,
    signal_group,
    spawn,
    still_running_after,
    wait_ready,
)
from kit.rpc.probes import grpc_serving

__all__ = ["SERVICES", "STATE_FILE", "Child", "ServiceSpec", "StartError", "log_tail"]

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
        self.process = spawn(
            self.argv or [sys.executable, "-m", "cli.main", *self.command],
            self.log_path,
            env=self.env,
            cwd=REPO_ROOT,
        )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def healthy(self) -> bool:
        if self.address is None:
            return self.exited() is None
        return grpc_serving(self.address, self.health_service)

    def wait_healthy(self, timeout_s: float) -> None:
        self.wait_until(self.healthy, timeout_s)

    def wait_until(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Raises StartError (its group killed) unless `ready()` passes within `timeout_s`."""
        assert self.process is not None, "start() it first"
        wait_ready(
            self.process,
            ready,
            name=self.name,
            log_path=self.log_path,
            timeout_s=timeout_s,
            interval_s=0.2,
        )

    def restart(self) -> None:
        """Kills what is left of it (its whole group), reaps it, starts it again."""
        if self.process is not None:
            kill_group(self.process)
        self.start()

    def wait_alive(self, settle_s: float) -> None:
        """For a process without a health check: it must still run after `settle_s`."""
        self.wait_until(still_running_after(settle_s), settle_s + 1)

    def signal_group(self, sig: int) -> None:
        if self.process is not None:
            signal_group(self.process, sig)

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
