"""A Go client generated from proto/ alone, built offline from Debian's Go packages (GOPATH
mode: golang-google-grpc-dev, golang-google-protobuf-dev, golang-google-genproto-dev for the
google.rpc error details), calls GetQuote, StreamQuotes, Register and PlaceOrder through Envoy
and decodes the ErrorInfo of refused calls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.edge.conftest import Stack

REPO = Path(__file__).resolve().parents[2]
DEBIAN_GOPATH = Path("/usr/share/gocode")


def _generate(gopath: Path) -> None:
    protos = sorted(str(p.relative_to(REPO / "proto")) for p in (REPO / "proto").rglob("*.proto"))
    plugins = {name: shutil.which(name) for name in ("protoc-gen-go", "protoc-gen-go-grpc")}
    assert all(plugins.values()), plugins
    (gopath / "src").mkdir()
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iproto", "-Ithird_party/googleapis"]
        + [f"--plugin={name}={path}" for name, path in plugins.items()]
        + [f"--go_out={gopath / 'src'}", f"--go-grpc_out={gopath / 'src'}", *protos],
        cwd=REPO,
        check=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def go_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gopath = tmp_path_factory.mktemp("gopath")
    _generate(gopath)  # into src/exness.dev/contracts/gen/go/... (each file's go_package)
    demo = gopath / "src" / "exness.dev" / "demo"
    shutil.copytree(REPO / "clients" / "go" / "demo", demo)
    binary = gopath / "demo"
    env = {
        **os.environ,
        "GO111MODULE": "off",  # no module proxy: Debian's packages in GOPATH
        "GOPATH": f"{gopath}:{DEBIAN_GOPATH}",
        "GOFLAGS": "",
    }
    built = subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=demo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return binary


@pytest.mark.timeout(1200)
def test_go_client_through_envoy(go_demo: Path, stack: Stack) -> None:
    ran = subprocess.run(
        [str(go_demo), "-edge", stack.edge], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout)
    assert result["quote"]["symbol"] == "BTCUSD"
    assert float(result["quote"]["ask"]) >= float(result["quote"]["bid"]) > 0
    assert result["streamed"] == ["ETHUSD"] * 3
    assert result["email"].startswith("go-")
    assert result["orderStatus"] == "ORDER_STATUS_FILLED"
    assert result["positionId"]
    assert result["withoutToken"] == {
        "code": "Unauthenticated",
        "reason": "TOKEN_INVALID",
        "fields": [],
    }
    assert result["badVolume"] == {
        "code": "InvalidArgument",
        "reason": "INVALID_ARGUMENT",
        "fields": ["volume"],
    }
    assert result["noMargin"] == {
        "code": "FailedPrecondition",
        "reason": "INSUFFICIENT_MARGIN",
        "fields": [],
    }
