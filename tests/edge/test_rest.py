"""REST/JSON through Envoy's transcoder, as a plain HTTP client (httpx) sees it."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import httpx

from tests.edge.conftest import PASSWORD, Stack, User, register


async def _quote(api: httpx.AsyncClient, symbol: str = "BTCUSD") -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        reply = await api.get(f"/v1/quotes/{symbol}")
        if reply.status_code == 200:
            quote: dict[str, Any] = reply.json()["quote"]
            return quote
        assert time.monotonic() < deadline, reply.text
        await asyncio.sleep(0.3)


async def test_register_login_refresh_me(api: httpx.AsyncClient) -> None:
    user = await register(api, deposit=None)
    login = await api.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] > 0

    refreshed = await api.post("/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refreshToken"] != tokens["refreshToken"]
    # The used refresh token is gone: presenting it again is refused, as JSON, with the reason.
    again = await api.post("/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert again.status_code == 401
    assert again.json()["details"][0]["reason"] == "REFRESH_TOKEN_REUSED"

    me = await api.get("/v1/me", headers={"authorization": f"Bearer {new['accessToken']}"})
    assert me.status_code == 200
    assert me.json()["user"] == {**me.json()["user"], "userId": user.user_id, "email": user.email}

    wrong = await api.post("/v1/auth/login", json={"email": user.email, "password": "nope-12345x"})
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/json"
    assert wrong.json()["details"][0]["reason"] == "INVALID_CREDENTIALS"


async def test_jwks_and_health_are_open(api: httpx.AsyncClient) -> None:
    jwks = await api.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.headers["content-type"].startswith("application/json")
    keys = jwks.json()["keys"]
    assert keys
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" for k in keys)
    health = await api.get("/healthz")
    assert health.status_code == 200


async def test_public_market_data(api: httpx.AsyncClient) -> None:
    instruments = (await api.get("/v1/instruments")).json()["instruments"]
    symbols = {i["symbol"] for i in instruments}
    assert {"BTCUSD", "ETHUSD", "EURUSD"} <= symbols
    quote = await _quote(api, "BTCUSD")
    assert Decimal(quote["ask"]) >= Decimal(quote["bid"]) > 0
    unknown = await api.get("/v1/quotes/NOPE1")
    assert unknown.status_code == 404
    assert unknown.json()["details"][0]["reason"] == "UNKNOWN_SYMBOL"
    candles = await api.get("/v1/candles/BTCUSD", params={"interval": "CANDLE_INTERVAL_1M"})
    assert candles.status_code == 200, candles.text


async def test_trading_round_trip(api: httpx.AsyncClient, user: User) -> None:
    account = (await api.get("/v1/account", headers=user.auth)).json()["account"]
    assert Decimal(account["balance"]) == Decimal("10000")

    market_buy = {
        "symbol": "BTCUSD",
        "side": "ORDER_SIDE_BUY",
        "type": "ORDER_TYPE_MARKET",
        "volume": "0.01",
        "clientOrderId": "rest-1",
    }
    placed = await api.post("/v1/orders", headers=user.auth, json=market_buy)
    assert placed.status_code == 200, placed.text
    order = placed.json()["order"]
    position = placed.json()["position"]
    assert order["status"] == "ORDER_STATUS_FILLED"
    assert position["volume"] == "0.01"
    assert position["side"] == "ORDER_SIDE_BUY"

    # A retry with the same key returns the first result, not a second position.
    retried = await api.post("/v1/orders", headers=user.auth, json=market_buy)
    assert retried.json()["order"]["orderId"] == order["orderId"]

    positions = (await api.get("/v1/positions", headers=user.auth)).json()["positions"]
    assert [p["positionId"] for p in positions] == [position["positionId"]]

    closed = await api.post(
        f"/v1/positions/{position['positionId']}:close", headers=user.auth, json={}
    )
    assert closed.status_code == 200, closed.text
    trade = closed.json()["trade"]
    assert trade["closeReason"] == "CLOSE_REASON_CLIENT"
    balance = Decimal(closed.json()["account"]["balance"])
    assert balance == Decimal("10000") + Decimal(trade["realizedPnl"])

    history = (await api.get("/v1/trades", headers=user.auth)).json()["trades"]
    assert [t["tradeId"] for t in history] == [trade["tradeId"]]
    assert (await api.get("/v1/positions", headers=user.auth)).json()["positions"] == []

    gone = await api.post(
        f"/v1/positions/{position['positionId']}:close", headers=user.auth, json={}
    )
    assert gone.status_code == 404
    assert gone.json()["details"][0]["reason"] == "POSITION_NOT_FOUND"


async def test_errors_map_to_http_status_with_status_body(
    api: httpx.AsyncClient, user: User
) -> None:
    too_big = await api.post(
        "/v1/orders",
        headers=user.auth,
        json={
            "symbol": "BTCUSD",
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_MARKET",
            "volume": "100",
        },
    )
    assert too_big.status_code == 400, too_big.text  # FAILED_PRECONDITION -> 400
    body = too_big.json()
    assert body["code"] == 9
    assert body["details"][0]["reason"] == "INSUFFICIENT_MARGIN"

    bad_volume = await api.post(
        "/v1/orders",
        headers=user.auth,
        json={
            "symbol": "BTCUSD",
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_MARKET",
            "volume": "-1",
        },
    )
    assert bad_volume.status_code == 400
    violations = [d for d in bad_volume.json()["details"] if "fieldViolations" in d]
    assert violations[0]["fieldViolations"][0]["field"] == "volume"


async def test_pending_order_is_triggered_by_the_feed(api: httpx.AsyncClient, user: User) -> None:
    """A BUY LIMIT just below the ask and a BUY STOP just above it: the synthetic feed's walk
    reaches one of them within seconds, and the engine fills it."""
    ids = []
    for kind, direction in (("ORDER_TYPE_LIMIT", -1), ("ORDER_TYPE_STOP", 1)):
        for _ in range(10):  # the market may cross the level between reading and placing
            ask = Decimal((await _quote(api))["ask"])
            price = ask + direction * (ask * Decimal("0.0001")).quantize(Decimal("0.01"))
            placed = await api.post(
                "/v1/orders",
                headers=user.auth,
                json={
                    "symbol": "BTCUSD",
                    "side": "ORDER_SIDE_BUY",
                    "type": kind,
                    "volume": "0.01",
                    "price": str(price),
                },
            )
            if placed.status_code == 200:
                break
            assert placed.json()["details"][0]["reason"] == "INVALID_PRICE_LEVEL", placed.text
        assert placed.status_code == 200, placed.text
        assert placed.json()["order"]["status"] == "ORDER_STATUS_PENDING"
        ids.append(placed.json()["order"]["orderId"])
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        positions = (await api.get("/v1/positions", headers=user.auth)).json()["positions"]
        if positions:
            assert positions[0]["orderId"] in ids
            return
        await asyncio.sleep(0.5)
    orders = (await api.get("/v1/orders", headers=user.auth)).json()["orders"]
    latest = await _quote(api)
    raise AssertionError(
        f"no pending order was triggered by the feed in 45 s: {orders}; latest quote {latest}"
    )


async def _sse_events(
    api: httpx.AsyncClient, path: str, count: int, headers: dict[str, str] | None = None
) -> tuple[httpx.Headers, list[str]]:
    """Reads raw SSE frames: each is `data: <json>` followed by a blank line."""
    frames: list[str] = []
    async with api.stream(
        "GET", path, headers={"accept": "text/event-stream", **(headers or {})}, timeout=20
    ) as reply:
        assert reply.status_code == 200
        buffer = ""
        async for chunk in reply.aiter_text():
            buffer += chunk
            while "\n\n" in buffer:
                frame, buffer = buffer.split("\n\n", 1)
                frames.append(frame)
            if len(frames) >= count:
                return reply.headers, frames
    raise AssertionError(f"stream ended after {len(frames)} events")


async def test_quotes_as_server_sent_events(api: httpx.AsyncClient) -> None:
    headers, frames = await _sse_events(api, "/v1/quotes:stream?symbols=BTCUSD&symbols=ETHUSD", 6)
    assert headers["content-type"].startswith("text/event-stream")
    seen = set()
    for frame in frames:
        assert frame.startswith("data: "), frame
        quote = json.loads(frame.removeprefix("data: "))["quote"]
        assert Decimal(quote["ask"]) >= Decimal(quote["bid"])
        seen.add(quote["symbol"])
    assert seen == {"BTCUSD", "ETHUSD"}


async def test_quotes_as_ndjson(api: httpx.AsyncClient) -> None:
    lines: list[dict[str, Any]] = []
    async with api.stream(
        "GET", "/v1/quotes:stream", params={"symbols": "BTCUSD"}, timeout=20
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/json")
        async for line in reply.aiter_lines():
            if line.strip():
                lines.append(json.loads(line))  # each line is one complete JSON object
            if len(lines) >= 4:
                break
    assert all(item["quote"]["symbol"] == "BTCUSD" for item in lines)
    times = [item["quote"]["time"] for item in lines]
    assert times == sorted(times)


async def test_account_stream_as_sse_needs_a_token(api: httpx.AsyncClient, user: User) -> None:
    refused = await api.get("/v1/account:stream", headers={"accept": "text/event-stream"})
    assert refused.status_code == 401
    _, frames = await _sse_events(api, "/v1/account:stream", 1, headers=user.auth)
    event = json.loads(frames[0].removeprefix("data: "))["event"]
    assert event["type"] == "ACCOUNT_EVENT_TYPE_ACCOUNT_SNAPSHOT"
    assert Decimal(event["account"]["balance"]) == Decimal("10000")


async def test_web_terminal_is_served_from_the_same_origin(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    for path, kind in (
        ("/", "text/html"),
        ("/index.html", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ):
        reply = await api.get(path)
        assert reply.status_code == 200, path
        assert reply.headers["content-type"].startswith(kind), path
        assert reply.content, path
