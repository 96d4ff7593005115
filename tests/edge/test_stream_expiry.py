"""A stream does not outlive its access token nor its session (logout), and the SDK carries on
across tokens without a gap: through the real Envoy and the real services."""

from __future__ import annotations

import asyncio
import time

import grpc
import httpx
import pytest
from exness.trading.v1 import trading_pb2, trading_pb2_grpc
from exness_client import Code, ExnessClient, ExnessError
from exness_client.contracts.exness.trading.v1 import AccountEvent, AccountEventType
from exness_client.session import Session

from tests.edge.conftest import PASSWORD, Stack, register, short_lived_token
from tests.support.grpc_errors import failure_of


async def test_an_account_stream_ends_when_its_token_expires(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    user = await register(api, deposit=None)
    token, expires_at = short_lived_token(stack, user, lifetime_s=4)
    async with grpc.aio.insecure_channel(stack.edge) as channel:
        call = trading_pb2_grpc.TradingServiceStub(channel).StreamAccount(
            trading_pb2.StreamAccountRequest(), metadata=(("authorization", f"Bearer {token}"),)
        )
        snapshot = await call.read()
        assert snapshot.event.type == trading_pb2.ACCOUNT_EVENT_TYPE_ACCOUNT_SNAPSHOT
        try:
            ended = await asyncio.wait_for(call.read(), timeout=20)
        except grpc.aio.AioRpcError as exc:
            failure = failure_of(exc)
        else:
            raise AssertionError(f"the stream went on after its token expired: {ended}")
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert expires_at - 1 <= time.time() < expires_at + 10


async def _ended(call: grpc.aio.UnaryStreamCall, timeout_s: float) -> float:
    """Reads `call` until it fails (within `timeout_s`, or TimeoutError); how long it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                await call.read()
    except grpc.aio.AioRpcError as exc:
        failure = failure_of(exc)
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED, failure
    assert failure.reason == "SESSION_REVOKED", failure
    return time.monotonic() - started


async def test_logging_out_ends_the_sessions_open_account_streams(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    user = await register(api, deposit=None)
    auth = (("authorization", f"Bearer {user.access_token}"),)
    request = trading_pb2.StreamAccountRequest()
    # The same stream through the edge and straight to the engine: the engine ends both.
    async with (
        grpc.aio.insecure_channel(stack.edge) as edge,
        grpc.aio.insecure_channel(stack.state["trading"]) as direct,
    ):
        calls = [
            trading_pb2_grpc.TradingServiceStub(channel).StreamAccount(request, metadata=auth)
            for channel in (edge, direct)
        ]
        for call in calls:
            snapshot = await call.read()
            assert snapshot.event.type == trading_pb2.ACCOUNT_EVENT_TYPE_ACCOUNT_SNAPSHOT

        logout = await api.post("/v1/auth/logout", json={"refreshToken": user.refresh_token})
        assert logout.status_code == 200, logout.text
        # Promptly: the engines follow revocations every second (10 s is for a busy machine;
        # the token itself would have run for 15 minutes).
        waited = await asyncio.gather(*(_ended(call, timeout_s=10) for call in calls))
        assert max(waited) < 10

        # The logged-out token opens nothing new and is refused for unary calls too.
        again = trading_pb2_grpc.TradingServiceStub(edge).StreamAccount(request, metadata=auth)
        await _ended(again, timeout_s=5)
    refused = await api.get("/v1/account", headers=user.auth)
    assert refused.status_code == 401, refused.text
    assert "SESSION_REVOKED" in refused.text


async def test_logging_out_leaves_other_sessions_streams_open(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    user = await register(api, deposit=None)
    login = await api.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    other = login.json()["accessToken"]  # a second login (another device)
    async with grpc.aio.insecure_channel(stack.edge) as channel:
        call = trading_pb2_grpc.TradingServiceStub(channel).StreamAccount(
            trading_pb2.StreamAccountRequest(), metadata=(("authorization", f"Bearer {other}"),)
        )
        await call.read()  # the snapshot
        logout = await api.post("/v1/auth/logout", json={"refreshToken": user.refresh_token})
        assert logout.status_code == 200, logout.text
        funded = await api.post(
            "/v1/account:deposit",
            json={"amount": "5"},
            headers={"authorization": f"Bearer {other}"},
        )
        assert funded.status_code == 200, funded.text
        event = await asyncio.wait_for(call.read(), timeout=15)  # still open, still live
        assert event.event.type == trading_pb2.ACCOUNT_EVENT_TYPE_BALANCE_CHANGED, event
        call.cancel()


async def test_the_sdk_stops_at_a_logout_elsewhere_and_says_why(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    """Logged out on another device: the SDK's stream and calls end with SESSION_REVOKED, not
    with a refresh that fails for a reason the user cannot act on."""
    user = await register(api, deposit=None)
    async with ExnessClient(stack.edge) as client:
        client.store.save(Session.issued(user.access_token, user.refresh_token, 900))
        events = client.stream_account()
        snapshot = await asyncio.wait_for(anext(events), 15)
        assert snapshot.type == AccountEventType.ACCOUNT_SNAPSHOT
        logout = await api.post("/v1/auth/logout", json={"refreshToken": user.refresh_token})
        assert logout.status_code == 200, logout.text
        with pytest.raises(ExnessError) as ended:
            await asyncio.wait_for(anext(events), 15)
        assert (ended.value.code, ended.value.reason) == (Code.UNAUTHENTICATED, "SESSION_REVOKED")

        client.store.save(Session.issued(user.access_token, user.refresh_token, 900))
        with pytest.raises(ExnessError) as refused:
            await client.account()
        assert refused.value.reason == "SESSION_REVOKED"
        assert client.store.session is None  # signed out: log in again


async def test_the_sdk_account_stream_outlives_its_token_without_a_gap(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    user = await register(api)
    short, expires_at = short_lived_token(stack, user, lifetime_s=6)
    orders = 8
    placed: list[str] = []
    async with ExnessClient(stack.edge) as client:
        # Signed in with a token about to expire and a real refresh token.
        session = Session(short, user.refresh_token, expires_at, issued_at=time.time())
        client.store.save(session)
        events: list[AccountEvent] = []
        keys = {f"gapless-{n}" for n in range(orders)}

        async def follow() -> None:
            # Until every order was seen on the stream. Judged by the idempotency keys, known
            # beforehand: an order's events may arrive before the REST reply that names its id
            # (they leave the engine together), and waiting on the ids of replies already read
            # then waits forever.
            async for event in client.stream_account():
                events.append(event)
                if keys <= {e.order.client_order_id for e in events if e.order is not None}:
                    return

        follower = asyncio.ensure_future(follow())
        await asyncio.sleep(1)  # subscribed
        for n in range(orders):  # spread over the token's expiry
            reply = await api.post(
                "/v1/orders",
                headers=user.auth,
                json={
                    "symbol": "BTCUSD",
                    "side": "ORDER_SIDE_BUY",
                    "type": "ORDER_TYPE_MARKET",
                    "volume": "0.01",
                    "clientOrderId": f"gapless-{n}",
                },
            )
            assert reply.status_code == 200, reply.text
            placed.append(reply.json()["order"]["orderId"])
            await asyncio.sleep(1.2)
        assert time.time() > expires_at + 2  # the first stream's token is long gone
        await asyncio.wait_for(follower, timeout=30)
        assert client.store.session is not None
        assert client.store.session.access_token != short  # it switched to a fresh token

    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences)), sequences  # once each, in order
    assert events[0].type == AccountEventType.ACCOUNT_SNAPSHOT
    ordered = {e.order.order_id for e in events if e.order is not None and e.order.order_id}
    assert ordered == set(placed)
