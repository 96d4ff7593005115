"""The shard count is a property of the data: a database created with 2 shards refuses to be
served by `exness up --shards 3` or by an engine started with another count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.scale.conftest import SHARDS, Platform
from tests.support.infra import free_port
from tests.support.processes import REPO, start_exness, up_command, up_env


def test_up_with_another_shard_count_is_refused(platform: Platform, tmp_path: Path) -> None:
    state = platform.state
    result = subprocess.run(
        up_command(
            tmp_path / "data",
            "--shards",
            str(SHARDS + 1),
            "--database-url",
            state["database_url"],
            "--kafka",
            state["kafka"],
        ),
        cwd=REPO,
        env=up_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"created with {SHARDS} engine shard(s)" in result.stderr, result.stderr
    assert "re-sharding" in result.stderr
    assert "Traceback" not in result.stderr
    assert "starting Auth" not in result.stdout  # refused before any service started


def test_an_engine_with_another_shard_count_does_not_start(
    platform: Platform, tmp_path: Path
) -> None:
    state = platform.state
    log = tmp_path / "engine.log"
    env = {
        "DATABASE_URL": state["database_url"],
        "KAFKA_BOOTSTRAP_SERVERS": state["kafka"],
        "EXNESS_DATA_DIR": str(platform.data_dir),
        "EXNESS_SHARD_COUNT": str(SHARDS + 1),
        "EXNESS_SHARD_ID": str(SHARDS),
        "EXNESS_TRADING_PORT": str(free_port()),
    }
    process = start_exness(["trading"], env, log)
    assert process.wait(60) != 0
    assert f"created with {SHARDS} engine shard(s)" in log.read_text()


def test_status_lists_every_shard_and_replica(platform: Platform) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "status"],
        cwd=REPO,
        env={**os.environ, "EXNESS_DATA_DIR": str(platform.data_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name, where in (
        *((f"trading {n}", a) for n, a in enumerate(platform.state["trading_shards"])),
        *((f"market {n}", a) for n, a in enumerate(platform.state["market_replicas"])),
    ):
        line = next((x for x in result.stdout.splitlines() if f" {name} " in x), "")
        assert where in line, (name, result.stdout)
        assert "SERVING" in line, (name, result.stdout)
        assert "NOT SERVING" not in line, (name, result.stdout)
