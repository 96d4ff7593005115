"""Child processes the platform starts and owns (embedded PostgreSQL and broker, the services
of `exness up`, Prometheus, Envoy, and the tests' own): started one way, judged started one
way.

Each child runs in its own process group, so stopping it also stops anything it started, with
its output appended to a log file. It counts as started only once a readiness probe passes;
one that exits first, or is not ready by the deadline, has its whole group killed and is
reported with the tail of its log (the reason is almost always there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Child = subprocess.Popen[bytes]


class StartError(RuntimeError):
    """A child did not start; the message says which and why, and ends with its log's tail."""


def log_tail(path: Path | None, lines: int = 15) -> str:
    """The last `lines` of a log, indented for an error message."""
    if path is None or not path.exists():
        return "    (no log)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "    (empty log)"


def spawn(
    argv: Sequence[str],
    log_path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    **popen: Any,
) -> Child:
    """Starts `argv` in a new process group with stdin closed and stdout and stderr appended
    to `log_path` (discarded when None). `popen` passes on (e.g. the user to run as)."""
    if log_path is None:
        return _popen(argv, subprocess.DEVNULL, env, cwd, popen)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:  # the child keeps its own descriptor
        return _popen(argv, out, env, cwd, popen)


def _popen(
    argv: Sequence[str],
    out: Any,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    popen: dict[str, Any],
) -> Child:
    return subprocess.Popen(
        list(argv),
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **popen,
    )


def signal_group(process: Child, sig: int) -> None:
    """`sig` to the child's whole process group (nothing happens if it is gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


# How long kill_group waits for the rest of a group to be gone.
GROUP_GONE_S = 5.0


def kill_group(process: Child) -> None:
    """SIGKILL to the child and everything in its group, and reap it; then waits (a few
    seconds at most) until nothing of the group is left. A killed PostgreSQL's backends outlive
    their postmaster for a moment, and a new server started meanwhile finds its shared memory
    still in use and exits."""
    signal_group(process, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + GROUP_GONE_S
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def wait_ready(
    process: Child,
    ready: Callable[[], bool],
    *,
    name: str,
    log_path: Path | None,
    timeout_s: float,
    interval_s: float = 0.1,
    tail_lines: int = 15,
) -> None:
    """Polls `ready()` until it passes. Raises StartError, after killing the child's group,
    when the child exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.poll()
        if code is not None:
            why = f"exited at start-up (code {code})"
            break
        if ready():
            return
        if time.monotonic() >= deadline:
            why = f"was not ready after {timeout_s:g}s"
            break
        time.sleep(interval_s)
    kill_group(process)
    raise StartError(f"{name} {why}; the end of {log_path}:\n{log_tail(log_path, tail_lines)}")


def still_running_after(settle_s: float) -> Callable[[], bool]:
    """A readiness probe for a child without one: it passes once the child has run for
    `settle_s` (one that rejects its arguments exits within that, even on a busy machine)."""
    settled_at = time.monotonic() + settle_s
    return lambda: time.monotonic() >= settled_at
