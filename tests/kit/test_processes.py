"""The one spawn-and-wait helper: a child that is ready is left running; one that exits or is
not ready in time is killed with everything it started, and the error shows its log."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kit.processes import StartError, kill_group, spawn, still_running_after, wait_ready


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_ready_child_keeps_running_with_its_output_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    marker = tmp_path / "ready"
    child = spawn(["sh", "-c", f"echo started; touch {marker}; exec sleep 30"], log)
    try:
        wait_ready(child, marker.exists, name="sleeper", log_path=log, timeout_s=10)
        assert child.poll() is None
        assert os.getpgid(child.pid) == child.pid  # its own process group
        assert "started" in log.read_text()
    finally:
        kill_group(child)


def test_a_child_that_exits_at_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = spawn(["sh", "-c", "echo 'bad flag --nope'; exit 3"], log)
    with pytest.raises(StartError) as failure:
        wait_ready(child, lambda: False, name="broken", log_path=log, timeout_s=10)
    message = str(failure.value)
    assert "broken exited at start-up (code 3)" in message
    assert "bad flag --nope" in message


def test_a_child_not_ready_in_time_is_killed_with_its_whole_group(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    # The grandchild (sleep) is what a careless kill of the leader alone would leave behind.
    child = spawn(["sh", "-c", "echo waiting; sleep 30 & wait"], log)
    with pytest.raises(StartError) as failure:
        wait_ready(child, lambda: False, name="stuck", log_path=log, timeout_s=0.5)
    assert "stuck was not ready after 0.5s" in str(failure.value)
    assert "waiting" in str(failure.value)
    assert child.returncode is not None  # reaped
    deadline = time.monotonic() + 5
    while not _group_gone(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_gone(child.pid)


def test_a_child_without_a_probe_must_outlive_its_settling_time(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    child = spawn(["sh", "-c", "sleep 0.2; exit 2"], log)
    with pytest.raises(StartError, match="code 2"):
        wait_ready(child, still_running_after(3), name="quitter", log_path=log, timeout_s=5)
