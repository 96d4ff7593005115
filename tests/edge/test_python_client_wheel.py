"""The Python client is a distribution of its own: its wheel installs alone in a clean virtual
environment (none of the platform's dependencies come along), is PEP 561 typed, and trades
through Envoy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.edge.conftest import Stack

REPO = Path(__file__).resolve().parents[2]
# What a client may bring along (and pip itself); the platform's own stack must not.
ALLOWED = {"exness-client", "betterproto2", "grpclib", "h2", "hpack", "hyperframe", "multidict"}
ALLOWED |= {"python-dateutil", "six", "typing-extensions", "typing_extensions", "tzdata"}
ALLOWED |= {"pip", "setuptools"}  # what `python -m venv` puts in every environment

TRADE = textwrap.dedent(
    """
    import asyncio, json, sys, uuid
    from decimal import Decimal
    from exness_client import Code, ExnessClient, ExnessError
    from exness_client.contracts.exness.common.v1 import ErrorReason
    from exness_client.contracts.exness.trading.v1 import OrderStatus

    async def main(edge):
        async with ExnessClient(edge) as client:
            await client.register(f"wheel-{uuid.uuid4().hex[:10]}@example.com", "wheel-pass-123")
            await client.deposit(Decimal("1000"))
            placed = await client.place_order("BTCUSD", "buy", volume="0.01")
            try:
                await client.place_order("BTCUSD", "buy", volume="abc")
                bad = None
            except ExnessError as exc:
                bad = {"code": exc.code.name, "reason": exc.reason, "fields": sorted(exc.fields)}
            try:
                await client.place_order("BTCUSD", "buy", volume="50")
                refused = None
            except ExnessError as exc:
                refused = {"code": exc.code.name, "reason": exc.reason_value.name}
            account = await client.account()
            print(json.dumps({
                "status": placed.order.status.name,
                "position": placed.position.position_id,
                "positions": [p.position_id for p in await client.positions()],
                "margin": account.margin,
                "bad": bad,
                "refused": refused,
            }))

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with only the client's wheel (and what pip resolves for it) installed."""
    root = tmp_path_factory.mktemp("python-client")
    source = root / "source"
    shutil.copytree(
        REPO / "clients" / "python",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(source),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    wheel = next(source.glob("exness_client-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=300,
    )
    return venv


def test_the_wheel_installs_only_what_a_client_needs(client_venv: Path) -> None:
    listed = subprocess.run(
        [str(client_venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert "exness-client" in installed
    assert installed <= {name.lower() for name in ALLOWED}, installed - ALLOWED
    where = "import exness_client, pathlib; print(pathlib.Path(exness_client.__file__).parent)"
    typed = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", where],
        capture_output=True,
        text=True,
        check=True,
    )
    package = Path(typed.stdout.strip())
    assert (package / "py.typed").exists()
    assert (package / "contracts" / "py.typed").exists()


def test_the_installed_client_trades_through_envoy(client_venv: Path, stack: Stack) -> None:
    ran = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", TRADE, stack.edge],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=client_venv,  # not the repository: only the installed package can be imported
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["status"] == "FILLED"
    assert result["positions"] == [result["position"]]
    assert result["margin"] != "0"
    assert result["bad"] == {
        "code": "INVALID_ARGUMENT",
        "reason": "INVALID_ARGUMENT",
        "fields": ["volume"],
    }
    assert result["refused"] == {"code": "FAILED_PRECONDITION", "reason": "INSUFFICIENT_MARGIN"}
