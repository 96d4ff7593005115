"""Envoy speaks the Connect protocol: `buf curl` with its default protocol (Connect, HTTP/1.1)
calls the platform through the edge, with the same access rules and error details as gRPC."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

from google.rpc import error_details_pb2

from tests.edge.conftest import Stack, User

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "node_modules" / ".bin" / "buf"
SCHEMA = REPO / "gen" / "descriptor" / "exness.binpb"


def _buf_curl(
    stack: Stack, method: str, data: dict[str, Any] | None = None, *headers: str
) -> subprocess.CompletedProcess[str]:
    command = [str(BUF), "curl", "--schema", str(SCHEMA), f"http://{stack.edge}/{method}"]
    if data is not None:
        command += ["--data", json.dumps(data)]
    for header in headers:
        command += ["-H", header]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _connect_error(ran: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert ran.returncode != 0
    error: dict[str, Any] = json.loads(ran.stdout or ran.stderr)
    return error


def _error_info(error: dict[str, Any]) -> error_details_pb2.ErrorInfo:
    detail = next(d for d in error["details"] if d["type"].endswith("google.rpc.ErrorInfo"))
    return error_details_pb2.ErrorInfo.FromString(base64.b64decode(detail["value"] + "=="))


def test_buf_curl_default_protocol_reads_public_data(stack: Stack) -> None:
    ran = _buf_curl(stack, "exness.market.v1.MarketDataService/GetQuote", {"symbol": "BTCUSD"})
    assert ran.returncode == 0, ran.stderr
    quote = json.loads(ran.stdout)["quote"]
    assert quote["symbol"] == "BTCUSD"
    assert float(quote["ask"]) >= float(quote["bid"]) > 0


def test_buf_curl_calls_a_user_method_with_a_token(stack: Stack, user: User) -> None:
    ran = _buf_curl(
        stack,
        "exness.trading.v1.TradingService/GetAccount",
        {},
        f"Authorization: Bearer {user.access_token}",
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["account"]["currency"] == "USD"


def test_connect_errors_carry_error_details(stack: Stack) -> None:
    refused = _connect_error(_buf_curl(stack, "exness.trading.v1.TradingService/GetAccount", {}))
    assert refused["code"] == "unauthenticated"
    assert _error_info(refused).reason == "TOKEN_INVALID"  # made by the edge

    invalid = _connect_error(
        _buf_curl(stack, "exness.market.v1.MarketDataService/GetQuote", {"symbol": "nope"})
    )
    assert invalid["code"] == "invalid_argument"
    assert _error_info(invalid).reason == "INVALID_ARGUMENT"  # made by the service
    bad = next(d for d in invalid["details"] if d["type"].endswith("google.rpc.BadRequest"))
    violations = error_details_pb2.BadRequest.FromString(base64.b64decode(bad["value"] + "=="))
    assert [v.field for v in violations.field_violations] == ["symbol"]
