"""`exness up` as a user meets it: the table of what runs where, a clean stop with no process
left behind, and clear messages (not stack traces) when it cannot start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from cli.devstack.children import STATE_FILE
from kit.rpc.probes import http_ok
from tests.edge.conftest import Stack, edge_env
from tests.support.processes import REPO, start_up, stop_up, up_command, wait_for_state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_up(
    tmp_path: Path, *extra: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        up_command(tmp_path / "data", *extra),
        cwd=REPO,
        env=edge_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _start_up_external(
    data_dir: Path, output: Path, database_url: str, kafka_bootstrap: str
) -> subprocess.Popen[bytes]:
    """`exness up` in the background on the session's PostgreSQL and broker."""
    return start_up(
        data_dir, output, edge_env(), "--database-url", database_url, "--kafka", kafka_bootstrap
    )


def test_up_prints_where_everything_runs(stack: Stack) -> None:
    out = stack.output_text()
    for component in (
        "PostgreSQL (embedded)",
        "Kafka (embedded Tansu)",
        "Auth",
        "MarketData",
        "Trading",
        "Poller (synthetic)",
        "Envoy edge",
    ):
        assert component in out, component
    assert f"Web terminal: http://localhost:{stack.edge.rsplit(':', 1)[1]}/" in out
    assert "Traceback" not in out


def test_started_twice_is_refused(stack: Stack) -> None:
    second = subprocess.run(
        up_command(stack.data_dir),
        cwd=REPO,
        env=edge_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert str(stack.state["pid"]) in second.stderr
    assert "Traceback" not in second.stderr + second.stdout
    assert stack.process.poll() is None  # the first one is untouched


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = _run_up(tmp_path, "--edge-port", str(port))
    assert result.returncode == 1
    assert f"port {port} (Envoy edge) is already taken" in result.stderr
    assert "--edge-port" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_component_that_fails_shows_its_log(
    tmp_path: Path, single_shard_database_url: str, kafka_bootstrap: str
) -> None:
    """The replay feed without a tape cannot start: the message names the component and shows
    the end of its log, and nothing started before it is left running."""
    result = _run_up(
        tmp_path,
        "--database-url",
        single_shard_database_url,
        "--kafka",
        kafka_bootstrap,
        "--feed",
        "replay",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Poller (replay) exited at start-up" in result.stderr
    assert "poller.log" in result.stderr
    assert "tape" in result.stderr  # the poller's own complaint, from its log
    assert "Traceback (most recent call last)" not in result.stderr.split("poller.log")[0]


def test_stop_leaves_no_process_behind(
    tmp_path: Path, single_shard_database_url: str, kafka_bootstrap: str
) -> None:
    """External PostgreSQL and Kafka (--database-url / --kafka); SIGTERM stops every child and
    every process those children started."""
    data_dir, output = tmp_path / "data", tmp_path / "up.out"
    process = _start_up_external(data_dir, output, single_shard_database_url, kafka_bootstrap)
    try:
        state = wait_for_state(data_dir, process, output)
    except BaseException:
        stop_up(process)
        raise
    assert "PostgreSQL (external)" in output.read_text()
    pids = [*state["children"].values(), state["edge_pid"]]
    assert all(_alive(pid) for pid in pids)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, output.read_text()[-3000:]
    deadline = time.monotonic() + 5
    while any(_alive(pid) or _group_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if _alive(pid) or _group_alive(pid)]
    assert not left, f"still running after exness up stopped: {left}"
    assert not (data_dir / STATE_FILE).exists()
    assert "stopped." in output.read_text()


def test_crashed_components_are_restarted(
    tmp_path: Path, single_shard_database_url: str, kafka_bootstrap: str
) -> None:
    """SIGKILL MarketData and Envoy under `exness up`: both come back on their own, and the
    edge reports every upstream healthy again."""
    data_dir, output = tmp_path / "data", tmp_path / "up.out"
    process = _start_up_external(data_dir, output, single_shard_database_url, kafka_bootstrap)
    try:
        state = wait_for_state(data_dir, process, output)
        killed = {"MarketData": state["children"]["MarketData"], "Envoy": state["edge_pid"]}
        for pid in killed.values():
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and not healthy:
            time.sleep(0.5)
            assert process.poll() is None, output.read_text()[-3000:]
            state = json.loads((data_dir / STATE_FILE).read_text())
            new = {"MarketData": state["children"]["MarketData"], "Envoy": state["edge_pid"]}
            if any(new[name] == killed[name] or not _alive(new[name]) for name in new):
                continue
            healthy = http_ok(f"{state['edge_url']}/healthz", timeout_s=2)  # False while starting
        text = output.read_text()
        assert healthy, text[-3000:]
        assert "MarketData exited" in text
        assert "Envoy exited" in text
    finally:
        assert stop_up(process) == 0, output.read_text()[-3000:]
