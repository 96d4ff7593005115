"""The README's REST scenario, as written there, against `exness up --shards 2
--market-replicas 2`: for a user of each shard."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.scale.conftest import PASSWORD, SHARDS, Platform

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _register(api: httpx.AsyncClient) -> tuple[int, str]:
    email = f"readme-{uuid.uuid4().hex[:12]}@example.com"
    reply = await api.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return int(body["user"].get("shard", 0)), body["tokens"]["accessToken"]


async def test_the_readme_rest_scenario_on_every_shard(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=f"http://{platform.edge}", timeout=15) as api:
        instruments = await api.get("/v1/instruments")
        assert instruments.status_code == 200
        assert "BTCUSD" in {i["symbol"] for i in instruments.json()["instruments"]}

        tokens: dict[int, str] = {}
        for _ in range(64):
            shard, token = await _register(api)
            tokens.setdefault(shard, token)
            if len(tokens) == SHARDS:
                break
        assert set(tokens) == set(range(SHARDS))

        for shard, token in tokens.items():
            auth = {"authorization": f"Bearer {token}"}
            deposit = await api.post("/v1/account:deposit", headers=auth, json={"amount": "1000"})
            assert deposit.status_code == 200, deposit.text
            assert deposit.json()["account"]["balance"] == "1000.00"
            order = await api.post(
                "/v1/orders",
                headers=auth,
                json={
                    "symbol": "BTCUSD",
                    "side": "ORDER_SIDE_BUY",
                    "type": "ORDER_TYPE_MARKET",
                    "volume": "0.01",
                    "stopLoss": "60000",
                },
            )
            assert order.status_code == 200, (shard, order.text)
            assert order.json()["order"]["status"] == "ORDER_STATUS_FILLED"
            assert int(order.json()["order"]["orderId"]) >> 48 == shard
            # The account stream as SSE: routed by the shard claim like every Trading call.
            headers = {**auth, "accept": "text/event-stream"}
            async with api.stream("GET", "/v1/account:stream", headers=headers) as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():
                    if line.startswith("data: "):
                        event = json.loads(line.removeprefix("data: "))["event"]
                        assert int(event["accountId"]) >> 48 == shard
                        assert event["account"]["balance"] == "1000.00"
                        break

        sse = {"accept": "text/event-stream"}
        async with api.stream("GET", "/v1/quotes:stream?symbols=BTCUSD", headers=sse) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    assert json.loads(line.removeprefix("data: "))["quote"]["symbol"] == "BTCUSD"
                    break
        async with api.stream("GET", "/v1/quotes:stream?symbols=BTCUSD") as stream:
            async for line in stream.aiter_lines():
                if line.strip():
                    assert json.loads(line)["quote"]["symbol"] == "BTCUSD"
                    break
