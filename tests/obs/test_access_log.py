"""The edge's access log: the gRPC status the service answered, also for REST calls (where
the transcoder turns it into an HTTP status), and never a query string."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.obs.conftest import Stack

pytestmark = pytest.mark.slow  # runs against a whole `exness up`


def _log_lines(stack: Stack, request_ids: set[str]) -> dict[str, dict[str, Any]]:
    """request id -> its access log line, once every id has one (Envoy flushes the file
    about every second). The edge makes its own x-request-id, so the tests mark their calls
    with a user agent of their own instead."""
    path = stack.data_dir / "logs" / "edge-access.log"
    deadline = time.monotonic() + 15
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        found = {line["user_agent"]: line for line in lines if line["user_agent"] in request_ids}
        if len(found) == len(request_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_rest_calls_are_logged_with_the_service_grpc_status(stack: Stack) -> None:
    email = f"log-{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": "a long passw0rd"}
    calls = {
        # (method, path, json) -> (HTTP status, gRPC status)
        ("POST", "/v1/auth/register", "new"): (200, "0"),
        ("POST", "/v1/auth/register", "again"): (409, "6"),  # ALREADY_EXISTS
        ("GET", "/v1/quotes/NOPE", ""): (404, "5"),  # NOT_FOUND
        ("POST", "/v1/auth/login", "bad"): (400, "3"),  # INVALID_ARGUMENT
    }
    ids = {}
    with httpx.Client(base_url=stack.edge_url, timeout=10) as client:
        for method, path, what in calls:
            request_id = str(uuid.uuid4())
            payload = {"email": "not-an-email", "password": ""} if what == "bad" else body
            reply = client.request(
                method,
                path,
                json=payload if method == "POST" else None,
                headers={"user-agent": request_id},
            )
            assert reply.status_code == calls[(method, path, what)][0], reply.text
            ids[request_id] = calls[(method, path, what)]
    logged = _log_lines(stack, set(ids))
    assert {rid: (line["status"], line["grpc_status"]) for rid, line in logged.items()} == ids


def test_the_query_string_never_reaches_the_log(stack: Stack) -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    request_ids = {str(uuid.uuid4()), str(uuid.uuid4())}
    with httpx.Client(base_url=stack.edge_url, timeout=10) as client:
        first, second = sorted(request_ids)
        # Refused by the transcoder (an unknown query parameter) and served (a known one).
        client.get(f"/v1/instruments?access_token={secret}", headers={"user-agent": first})
        client.get(
            f"/v1/candles/BTCUSD?interval=CANDLE_INTERVAL_M1&access_token={secret}",
            headers={"user-agent": second},
        )
    logged = _log_lines(stack, request_ids)
    assert set(logged) == request_ids
    text = (stack.data_dir / "logs" / "edge-access.log").read_text()
    assert secret not in text
    assert {logged[first]["path"], logged[second]["path"]} == {
        "/v1/instruments",
        "/v1/candles/BTCUSD",
    }
