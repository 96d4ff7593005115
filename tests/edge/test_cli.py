"""The trader commands of the `exness` CLI (the Python SDK underneath) against the platform,
as a user types them: one process per command, the session kept in the data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.edge.conftest import PASSWORD, Stack
from tests.support.processes import REPO


def _exness(stack: Stack, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EXNESS_DATA_DIR": str(home),
        "EXNESS_EDGE": stack.edge,
        "EXNESS_PASSWORD": PASSWORD,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_trader_commands(stack: Stack, tmp_path: Path) -> None:
    email = f"cli-{uuid.uuid4().hex[:10]}@example.com"
    registered = _exness(stack, tmp_path, "register", email)
    assert registered.returncode == 0, registered.stderr
    assert f"signed in as {email}" in registered.stdout
    assert (tmp_path / "session.json").exists()

    assert _exness(stack, tmp_path, "deposit", "5000").returncode == 0
    account = _json(_exness(stack, tmp_path, "account", "--json"))
    assert Decimal(account["balance"]) == Decimal("5000")

    table = _exness(stack, tmp_path, "quotes", "BTCUSD", "ETHUSD")
    assert table.returncode == 0, table.stderr
    assert "BTCUSD" in table.stdout
    assert "ETHUSD" in table.stdout

    placed = _json(
        _exness(
            stack,
            tmp_path,
            "order",
            "buy",
            "BTCUSD",
            "0.01",
            "--sl",
            "1000",
            "--tp",
            "10000000",
            "--json",
        )
    )
    assert placed["order"]["status"] == "ORDER_STATUS_FILLED"
    assert placed["position"]["stopLoss"] == "1000"
    position_id = placed["position"]["positionId"]

    positions = _exness(stack, tmp_path, "positions")
    assert positions.returncode == 0
    assert "open positions" in positions.stdout
    assert "BTCUSD" in positions.stdout

    closed = _exness(stack, tmp_path, "close", position_id)
    assert closed.returncode == 0, closed.stderr
    assert "closed 0.01 BTCUSD" in closed.stdout
    trades = _json(_exness(stack, tmp_path, "trades", "--json"))
    assert [t["positionId"] for t in trades] == [position_id]

    refused = _exness(stack, tmp_path, "order", "buy", "BTCUSD", "0.01", "--sl", "-5")
    assert refused.returncode == 1
    assert "INVALID_ARGUMENT" in refused.stderr
    assert "stop_loss" in refused.stderr
    assert "Traceback" not in refused.stderr

    assert _exness(stack, tmp_path, "logout").returncode == 0
    signed_out = _exness(stack, tmp_path, "account")
    assert signed_out.returncode == 1
    assert "log in first" in signed_out.stderr


def test_quotes_follow_streams(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "EXNESS_DATA_DIR": str(tmp_path), "EXNESS_EDGE": stack.edge}
    with subprocess.Popen(
        [sys.executable, "-m", "cli.main", "quotes", "SOLUSD", "--follow", "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as follow:
        assert follow.stdout is not None
        lines = [json.loads(follow.stdout.readline()) for _ in range(3)]
        follow.terminate()
    assert {line["symbol"] for line in lines} == {"SOLUSD"}


def test_status_reports_every_component(stack: Stack) -> None:
    env = {**os.environ, "EXNESS_DATA_DIR": str(stack.data_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "status"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SERVING") >= 4
    assert "NOT SERVING" not in result.stdout
