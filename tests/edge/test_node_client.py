"""A client generated in a second language: TypeScript (protoc-gen-es + Connect), run by Node
through Envoy over gRPC-Web and over native gRPC. The proof that the contracts serve typed
clients in any language."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.edge.conftest import Stack

REPO = Path(__file__).resolve().parents[2]
TSX = REPO / "node_modules" / ".bin" / "tsx"
TSC = REPO / "node_modules" / ".bin" / "tsc"


def test_typescript_client_type_checks() -> None:
    result = subprocess.run(
        [str(TSC), "--noEmit", "-p", "clients/node/tsconfig.json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_typescript_client_over_grpc_web_and_grpc(stack: Stack) -> None:
    env = {**os.environ, "EXNESS_EDGE_URL": stack.url}
    env.pop("HTTP_PROXY", None)
    env.pop("http_proxy", None)
    result = subprocess.run(
        [str(TSX), "clients/node/src/demo.ts"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs: dict[str, dict[str, Any]] = {}
    for line in result.stdout.splitlines():
        run = json.loads(line)
        runs[run["transport"]] = run
    assert set(runs) == {"grpc-web", "grpc"}
    for run in runs.values():
        assert run["email"].startswith(f"node-{run['transport']}-")
        assert run["refusedWithoutToken"] == "Unauthenticated"
        # Error details decoded with the generated google.rpc types, from the edge and services.
        assert run["refusedWithoutTokenReason"] == "TOKEN_INVALID", run
        assert run["refusals"] == {
            "badVolume": {
                "code": "InvalidArgument",
                "reason": "INVALID_ARGUMENT",
                "known": True,
                "fields": ["volume"],
            },
            "unknownSymbol": {
                "code": "NotFound",
                "reason": "UNKNOWN_SYMBOL",
                "known": True,
                "fields": [],
            },
        }
        assert len(run["quotes"]) >= 3
        assert {q["symbol"] for q in run["quotes"]} <= {"BTCUSD", "ETHUSD"}
        assert run["orderStatus"] == "FILLED"
        assert run["positionIds"] == [run["openedPosition"]]

    # The edge saw both wire protocols (its access log records the client's content type).
    log = stack.data_dir / "logs" / "edge-access.log"
    wanted = {("grpc-web", "HTTP/1.1"), ("grpc", "HTTP/2")}
    deadline = time.monotonic() + 10  # the access log is flushed about once a second
    while time.monotonic() < deadline:
        seen = set()
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if entry["grpc_method"] == "/exness.trading.v1.TradingService/PlaceOrder":
                # "was application/grpc-web+proto" or "was application/grpc+proto"
                kind = entry["client_content_type"].removeprefix("was application/")
                seen.add((kind.split("+")[0], entry["protocol"]))
        if wanted <= seen:
            return
        time.sleep(0.5)
    raise AssertionError(
        f"PlaceOrder over {wanted - seen} not in the access log:\n{log.read_text()[-3000:]}"
    )
