"""Refusals made by Envoy itself carry a google.rpc.ErrorInfo with a declared ErrorReason, in
the JSON body for REST clients and in grpc-status-details-bin for gRPC clients, like the
services' own errors."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest
from exness.common.v1 import errors_pb2
from exness.market.v1 import market_pb2, market_pb2_grpc
from exness.trading.v1 import trading_pb2, trading_pb2_grpc

from tests.edge.conftest import AUTH_RATE_BURST, Stack, User
from tests.support.grpc_errors import failure_of

DECLARED = {name.removeprefix("ERROR_REASON_") for name in errors_pb2.ErrorReason.keys()}  # noqa: SIM118


def _rest_reason(reply: httpx.Response) -> str:
    assert reply.headers["content-type"] == "application/json", reply.text
    details: list[dict[str, Any]] = reply.json()["details"]
    infos = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert len(infos) == 1, reply.text
    reason = str(infos[0]["reason"])
    assert reason in DECLARED
    assert infos[0]["domain"] == "exness.com"
    return reason


async def test_rest_refusals_made_by_the_edge_carry_a_reason(
    api: httpx.AsyncClient, user: User
) -> None:
    no_token = await api.get("/v1/account")
    assert (no_token.status_code, _rest_reason(no_token)) == (401, "TOKEN_INVALID")
    bad_token = await api.get("/v1/account", headers={"authorization": "Bearer not.a.jwt"})
    assert (bad_token.status_code, _rest_reason(bad_token)) == (401, "TOKEN_INVALID")
    unknown_route = await api.get("/v1/no-such-thing")
    assert (unknown_route.status_code, _rest_reason(unknown_route)) == (404, "ROUTE_NOT_FOUND")
    internal = await api.post("/exness.market.v1.MarketDataService/PublishQuotes", json={})
    assert (internal.status_code, _rest_reason(internal)) == (404, "ROUTE_NOT_FOUND")
    too_large = await api.post(
        "/v1/orders", headers=user.auth, content='{"symbol": "' + "A" * 200_000 + '"}'
    )
    assert (too_large.status_code, _rest_reason(too_large)) == (413, "REQUEST_TOO_LARGE")


async def test_rate_limited_rest_calls_carry_a_reason(stack: Stack) -> None:
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.11")
    async with httpx.AsyncClient(
        base_url=stack.url, transport=transport, trust_env=False, timeout=60
    ) as other:
        # Registrations with a password too weak to hash: the same bucket as logins, but cheap
        # for Auth (a flood of failed logins costs a password hash each and starves Auth's
        # health checks) and clear of its per-account login backoff (LOGIN_THROTTLED, a 429 too).
        replies = await asyncio.gather(
            *[
                other.post(
                    "/v1/auth/register", json={"email": f"nobody-{n}@example.com", "password": "x"}
                )
                for n in range(AUTH_RATE_BURST + 20)
            ]
        )
    limited = [reply for reply in replies if reply.status_code == 429]
    assert limited
    assert {_rest_reason(reply) for reply in limited} == {"RATE_LIMITED"}


async def test_grpc_refusals_made_by_the_edge_carry_a_reason(stack: Stack, user: User) -> None:
    async with grpc.aio.insecure_channel(stack.edge) as channel:
        trading = trading_pb2_grpc.TradingServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer not.a.jwt"),)):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await trading.GetAccount(trading_pb2.GetAccountRequest(), metadata=metadata)
            failure = failure_of(refused.value)
            assert (failure.code, failure.reason) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "TOKEN_INVALID",
            )
        market = market_pb2_grpc.MarketDataServiceStub(channel)
        # A valid token gets past the JWT check to the route that refuses internal RPCs.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await market.PublishQuotes(
                iter([market_pb2.PublishQuotesRequest()]),
                metadata=(("authorization", f"Bearer {user.access_token}"),),
            )
        failure = failure_of(refused.value)
        assert failure.reason == "ROUTE_NOT_FOUND"
        assert failure.code == grpc.StatusCode.UNIMPLEMENTED
