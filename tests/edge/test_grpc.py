"""Native gRPC (h2c) through Envoy: grpcurl with the descriptor set, and the Python SDK."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from exness_client import Code, ExnessClient, ExnessError, SessionStore
from exness_client.contracts.exness.common.v1 import ErrorReason

from gateway.config import DESCRIPTOR_PATH
from tests.edge.conftest import PASSWORD, Stack
from tests.support.processes import grpcurl_binary


def grpcurl(
    stack: Stack,
    method: str,
    body: dict[str, object] | None = None,
    token: str | None = None,
    *extra: str,
) -> subprocess.CompletedProcess[str]:
    command = [
        str(grpcurl_binary()),
        "-plaintext",
        "-protoset",
        str(DESCRIPTOR_PATH),
        "-format-error",
        *extra,
    ]
    if token:
        command += ["-H", f"authorization: Bearer {token}"]
    if body is not None:
        command += ["-d", json.dumps(body)]
    command += [stack.edge, method]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_grpcurl_register_login_and_trade(stack: Stack) -> None:
    email = f"grpcurl-{uuid.uuid4().hex[:10]}@example.com"
    registered = grpcurl(
        stack, "exness.auth.v1.AuthService/Register", {"email": email, "password": PASSWORD}
    )
    assert registered.returncode == 0, registered.stderr
    token = json.loads(registered.stdout)["tokens"]["accessToken"]

    denied = grpcurl(stack, "exness.trading.v1.TradingService/GetAccount", {})
    assert denied.returncode != 0
    assert json.loads(denied.stderr)["code"] == 16  # UNAUTHENTICATED, from the edge

    deposit = grpcurl(stack, "exness.trading.v1.TradingService/Deposit", {"amount": "500"}, token)
    assert deposit.returncode == 0, deposit.stderr
    assert Decimal(json.loads(deposit.stdout)["account"]["balance"]) == Decimal("500")

    bad = grpcurl(stack, "exness.trading.v1.TradingService/Deposit", {"amount": "-5"}, token)
    assert bad.returncode != 0
    error = json.loads(bad.stderr)
    assert error["code"] == 3
    assert error["details"][0]["reason"] == "INVALID_ARGUMENT"

    instruments = grpcurl(stack, "exness.market.v1.MarketDataService/ListInstruments", {})
    assert instruments.returncode == 0, instruments.stderr
    assert "BTCUSD" in {i["symbol"] for i in json.loads(instruments.stdout)["instruments"]}


def test_grpcurl_server_stream(stack: Stack) -> None:
    streamed = grpcurl(
        stack,
        "exness.market.v1.MarketDataService/StreamQuotes",
        {"symbols": ["ETHUSD"]},
        None,
        "-max-time",
        "3",
    )
    # -max-time ends the stream (exit code != 0); what arrived before is on stdout.
    decoder = json.JSONDecoder()
    text, messages = streamed.stdout.strip(), []
    while text:
        message, end = decoder.raw_decode(text)
        messages.append(message)
        text = text[end:].strip()
    assert len(messages) >= 3, streamed.stderr
    assert {m["quote"]["symbol"] for m in messages} == {"ETHUSD"}


async def test_sdk_through_envoy(stack: Stack, tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "session.json")
    async with ExnessClient(stack.edge, store=store) as client:
        email = f"sdk-{uuid.uuid4().hex[:10]}@example.com"
        await client.register(email, PASSWORD)
        assert (tmp_path / "session.json").stat().st_mode & 0o777 == 0o600
        await client.deposit(Decimal("2500.50"))
        with pytest.raises(TypeError):
            await client.deposit(1.5)  # type: ignore[arg-type]

        placed = await client.place_order("BTCUSD", "buy", volume="0.01")
        assert placed.order is not None
        assert placed.position is not None
        assert placed.order.client_order_id.startswith("sdk-")
        again = await client.place_order(
            "BTCUSD", "buy", volume="0.01", client_order_id=placed.order.client_order_id
        )
        assert again.order is not None
        assert again.order.order_id == placed.order.order_id  # idempotent by key
        assert len(await client.positions()) == 1

        with pytest.raises(ExnessError) as refused:
            await client.place_order("BTCUSD", "buy", volume="50")
        assert refused.value.reason == "INSUFFICIENT_MARGIN"
        assert refused.value.code == Code.FAILED_PRECONDITION
        assert refused.value.reason_value == ErrorReason.INSUFFICIENT_MARGIN

        quotes = []
        async for quote in client.stream_quotes(["BTCUSD", "SOLUSD"]):
            quotes.append(quote)
            if len(quotes) == 4:
                break
        assert {q.symbol for q in quotes} <= {"BTCUSD", "SOLUSD"}

        closed = await client.close_position(placed.position.position_id)
        assert closed.trade is not None
        assert closed.trade.volume == "0.01"
        account = await client.account()
        assert Decimal(account.balance) == Decimal("2500.50") + Decimal(closed.trade.realized_pnl)

    # A new client (a new CLI invocation) reuses the stored session.
    async with ExnessClient(stack.edge, store=SessionStore(tmp_path / "session.json")) as later:
        assert (await later.me()).email == email


async def test_sdk_refreshes_an_expired_access_token(stack: Stack) -> None:
    async with ExnessClient(stack.edge) as client:
        await client.register(f"refresh-{uuid.uuid4().hex[:10]}@example.com", PASSWORD)
        session = client.store.session
        assert session is not None
        first = session.access_token
        session.expires_at = 0  # as if it had expired: the next call refreshes first
        # Concurrent calls refresh once (refresh tokens are single-use; a second use would
        # revoke the whole login).
        accounts = await asyncio.gather(*[client.account() for _ in range(5)])
        assert len({a.account_id for a in accounts}) == 1
        assert client.store.session is not None
        assert client.store.session.access_token != first
        assert (await client.me()).email.startswith("refresh-")
