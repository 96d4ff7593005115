"""The operators' admin services, driven with the real grpcurl binary (server reflection) on a
platform started by `exness up`: exposure, accounts by margin level, halt and resume, force
close, re-publishing the journal, the spread markup; the operator credential; never through
the public edge."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from exness.trading.v1 import trading_pb2

from gateway.config import DESCRIPTOR_PATH
from kit.data.kafka import EVENTS_TOPIC
from tests.support.kcat import read_values
from tests.support.platform import Platform, User, register, running_platform
from tests.support.processes import grpcurl_binary

TRADING_ADMIN = "exness.admin.v1.TradingAdminService"
MARKET_ADMIN = "exness.admin.v1.MarketAdminService"


@pytest.fixture(scope="module")
def platform(session_dir: Path) -> Iterator[Platform]:
    with running_platform(session_dir / "admin-platform") as platform:
        yield platform


@pytest.fixture
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=15) as client:
        yield client


def operator_token(platform: Platform) -> str:
    return (platform.data_dir / "operator-token").read_text().strip()


async def grpcurl(
    address: str,
    method: str,
    body: dict[str, Any] | None = None,
    *headers: str,
    then: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    command = [str(grpcurl_binary()), "-plaintext", "-format-error", "-emit-defaults", *flags]
    for header in headers:
        command += ["-H", header]
    if body is not None:
        command += ["-d", json.dumps(body)]
    command += [address, method, *then]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=30, check=False
    )


async def admin(
    platform: Platform, service: str, method: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Calls an admin method as an operator; its JSON answer."""
    address = platform.state["market" if service == MARKET_ADMIN else "trading"]
    done = await grpcurl(
        address, f"{service}/{method}", body or {}, f"x-operator-token: {operator_token(platform)}"
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


async def buy(api: httpx.AsyncClient, user: User, symbol: str = "BTCUSD") -> httpx.Response:
    order = {"symbol": symbol, "side": "ORDER_SIDE_BUY", "type": "ORDER_TYPE_MARKET"}
    return await api.post("/v1/orders", headers=user.auth, json={**order, "volume": "0.01"})


async def test_reflection_lists_the_admin_services(platform: Platform) -> None:
    for key, service in (("trading", TRADING_ADMIN), ("market", MARKET_ADMIN)):
        listed = await grpcurl(platform.state[key], "list")
        assert listed.returncode == 0, listed.stderr
        assert service in listed.stdout.split()
    methods = await grpcurl(platform.state["trading"], "list", then=(TRADING_ADMIN,))
    assert methods.returncode == 0, methods.stderr
    assert {f"{TRADING_ADMIN}.{m}" for m in ("HaltTrading", "ForceClosePosition")} <= set(
        methods.stdout.split()
    )


async def test_only_operators_get_in_and_never_through_the_edge(
    platform: Platform, api: httpx.AsyncClient
) -> None:
    user = await register(api)
    trading = platform.state["trading"]
    method = f"{TRADING_ADMIN}/HaltTrading"
    body = {"symbol": "ETHUSD", "reason": "not allowed"}
    cases = [
        ((), 16),  # UNAUTHENTICATED: no credential
        (("x-operator-token: wrong",), 16),
        ((f"authorization: Bearer {user.access_token}",), 7),  # PERMISSION_DENIED
    ]
    for headers, code in cases:
        refused = await grpcurl(trading, method, body, *headers)
        assert refused.returncode != 0
        assert json.loads(refused.stderr)["code"] == code, refused.stderr
    # The public edge does not route admin paths at all, even with a valid user token and the
    # operator credential: Envoy answers 404 itself (gRPC UNIMPLEMENTED).
    through_edge = await grpcurl(
        platform.state["edge"],
        method,
        body,
        f"authorization: Bearer {user.access_token}",
        f"x-operator-token: {operator_token(platform)}",
        flags=("-protoset", str(DESCRIPTOR_PATH)),  # the edge serves no reflection
    )
    assert through_edge.returncode != 0
    assert json.loads(through_edge.stderr)["code"] == 12, through_edge.stderr
    # ... and no service saw it (the edge's catch-all route would also yield UNIMPLEMENTED).
    seen: list[dict[str, Any]] = []
    for _ in range(50):  # Envoy writes its access log about once a second
        access = (platform.data_dir / "logs" / "edge-access.log").read_text().splitlines()
        seen = [json.loads(line) for line in access if f"/{method}" in line]
        if seen:
            break
        await asyncio.sleep(0.2)
    assert seen
    assert all(e["details"] == "direct_response" and e["upstream"] is None for e in seen)
    # Bad input names the field and changes nothing.
    bad = await grpcurl(
        trading,
        method,
        {"symbol": "eth usd", "reason": "x"},
        f"x-operator-token: {operator_token(platform)}",
    )
    assert bad.returncode != 0
    error = json.loads(bad.stderr)
    assert error["code"] == 3, bad.stderr
    assert "symbol" in json.dumps(error["details"])
    assert (await admin(platform, TRADING_ADMIN, "ListHalts"))["halts"] == []
    assert (await buy(api, user, "ETHUSD")).status_code == 200


async def test_halt_refuses_orders_until_resumed(
    platform: Platform, api: httpx.AsyncClient
) -> None:
    user = await register(api)
    halted = await admin(
        platform, TRADING_ADMIN, "HaltTrading", {"symbol": "BTCUSD", "reason": "exchange outage"}
    )
    assert halted["halt"]["symbol"] == "BTCUSD"
    listed = await admin(platform, TRADING_ADMIN, "ListHalts")
    assert [(h["symbol"], h["reason"]) for h in listed["halts"]] == [("BTCUSD", "exchange outage")]
    refused = await buy(api, user)
    assert refused.status_code == 400, refused.text
    assert refused.json()["details"][0]["reason"] == "TRADING_HALTED"
    positions = await api.get("/v1/positions", headers=user.auth)
    assert positions.json()["positions"] == []  # nothing changed
    resumed = await admin(platform, TRADING_ADMIN, "ResumeTrading", {"symbol": "BTCUSD"})
    assert resumed["was_halted"] is True
    assert (await buy(api, user)).status_code == 200
    assert (await admin(platform, TRADING_ADMIN, "ListHalts"))["halts"] == []


async def test_exposure_margin_levels_and_force_close(
    platform: Platform, api: httpx.AsyncClient
) -> None:
    user = await register(api)
    placed = await buy(api, user, "ETHUSD")
    assert placed.status_code == 200, placed.text
    position_id = placed.json()["position"]["positionId"]

    exposure = await admin(platform, TRADING_ADMIN, "GetExposure")
    eth = next(s for s in exposure["symbols"] if s["symbol"] == "ETHUSD")
    assert Decimal(eth["long_volume"]) >= Decimal("0.01")
    assert Decimal(eth["net_volume"]) == Decimal(eth["long_volume"]) - Decimal(eth["short_volume"])
    assert Decimal(eth["net_notional"]) > 0
    assert eth["positions"] >= 1

    risks = (await admin(platform, TRADING_ADMIN, "ListAccountsByMarginLevel", {"limit": 500}))[
        "accounts"
    ]
    levels = [Decimal(a["margin_level"]) for a in risks]
    assert levels == sorted(levels)
    assert user.user_id in {a["user_id"] for a in risks}

    closed = await admin(
        platform,
        TRADING_ADMIN,
        "ForceClosePosition",
        {"position_id": position_id, "reason": "risk: ETH feed unreliable"},
    )
    assert closed["trade"]["position_id"] == position_id
    assert closed["trade"]["close_reason"] == "CLOSE_REASON_OPERATOR"
    # The position is gone and its history (the trader's own trade list) says why.
    positions = await api.get("/v1/positions", headers=user.auth)
    assert positions.json()["positions"] == []
    trades = (await api.get("/v1/trades", headers=user.auth)).json()["trades"]
    assert [(t["closeReason"], t["closeNote"]) for t in trades] == [
        ("CLOSE_REASON_OPERATOR", "risk: ETH feed unreliable")
    ]
    again = await grpcurl(
        platform.state["trading"],
        f"{TRADING_ADMIN}/ForceClosePosition",
        {"position_id": position_id, "reason": "twice"},
        f"x-operator-token: {operator_token(platform)}",
    )
    assert again.returncode != 0
    assert json.loads(again.stderr)["code"] == 5  # NOT_FOUND


async def test_republish_events_publishes_the_journal_again(
    platform: Platform, api: httpx.AsyncClient
) -> None:
    user = await register(api)
    assert (await buy(api, user)).status_code == 200
    bootstrap = platform.state["kafka"]
    sequences_before = await _sequences(bootstrap)
    assert sequences_before, "the relay published nothing"
    last = max(sequences_before)
    answer = await admin(platform, TRADING_ADMIN, "RepublishEvents", {"from_sequence": last})
    assert int(answer["events"]) >= 1
    for _ in range(50):
        sequences = await _sequences(bootstrap)
        if sequences.count(last) >= 2:
            break
        await asyncio.sleep(0.2)
    assert sequences.count(last) == sequences_before.count(last) + 1


async def _sequences(bootstrap: str) -> list[int]:
    """The journal sequence of every record on trading.events (the relay's header)."""
    values = await read_values(bootstrap, EVENTS_TOPIC)
    return [trading_pb2.AccountEvent.FromString(value).sequence for value in values]


async def test_spread_markup_applies_to_the_next_quotes(
    platform: Platform, api: httpx.AsyncClient
) -> None:
    answer = await admin(
        platform, MARKET_ADMIN, "SetSpreadMarkup", {"symbol": "SOLUSD", "spread_markup": "7.50"}
    )
    assert Decimal(answer["spread_markup"]) == Decimal("7.50")
    spread = Decimal(0)
    for _ in range(50):
        quote = (await api.get("/v1/quotes/SOLUSD")).json()["quote"]
        spread = Decimal(quote["ask"]) - Decimal(quote["bid"])
        if spread >= Decimal("7.50"):
            break
        await asyncio.sleep(0.2)
    assert spread >= Decimal("7.50")
    instruments = (await api.get("/v1/instruments")).json()["instruments"]
    markup = next(i for i in instruments if i["symbol"] == "SOLUSD")["spreadMarkup"]
    assert Decimal(markup) == Decimal("7.50")
    restored = await admin(
        platform,
        MARKET_ADMIN,
        "SetSpreadMarkup",
        {"symbol": "SOLUSD", "spread_markup": answer["previous_spread_markup"]},
    )
    assert restored["spread_markup"] == answer["previous_spread_markup"]
