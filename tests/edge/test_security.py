"""Security at the edge: tokens, identity headers, rate limiting, internal RPCs, CORS and bad
input. Every refusal is checked to change nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from decimal import Decimal

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from exness.market.v1 import market_pb2, market_pb2_grpc

from services.auth.throttle import LoginBackoff
from tests.edge.conftest import (
    AUTH_RATE_BURST,
    PASSWORD,
    Stack,
    User,
    register,
    signing_key,
    token_claims,
)


async def _balance(api: httpx.AsyncClient, user: User) -> Decimal:
    reply = await api.get("/v1/account", headers=user.auth)
    assert reply.status_code == 200, reply.text
    return Decimal(reply.json()["account"]["balance"])


async def test_no_token_is_401_json(api: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/v1/account"),
        ("POST", "/v1/orders"),
        ("GET", "/v1/me"),
        ("GET", "/v1/positions"),
    ):
        reply = await api.request(method, path, json={} if method == "POST" else None)
        assert reply.status_code == 401, (path, reply.text)
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["code"] == 16


async def test_a_valid_token_signed_by_auth_passes(
    stack: Stack, api: httpx.AsyncClient, user: User
) -> None:
    """The control for the refusals below: a token made the same way with Auth's real key."""
    kid, key = signing_key(stack)
    token = jwt.encode(token_claims(user), key, algorithm="EdDSA", headers={"kid": kid})
    reply = await api.get("/v1/account", headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 200, reply.text


async def test_expired_token(stack: Stack, api: httpx.AsyncClient, user: User) -> None:
    kid, key = signing_key(stack)
    expired = jwt.encode(
        token_claims(user, iat=int(time.time()) - 3600, exp=int(time.time()) - 600),
        key,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    reply = await api.get("/v1/account", headers={"authorization": f"Bearer {expired}"})
    assert reply.status_code == 401
    assert "expired" in reply.json()["message"].lower()


async def test_token_signed_by_another_key(
    api: httpx.AsyncClient, stack: Stack, user: User
) -> None:
    kid, _ = signing_key(stack)
    forged = jwt.encode(
        token_claims(user), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
    )
    reply = await api.get("/v1/account", headers={"authorization": f"Bearer {forged}"})
    assert reply.status_code == 401
    assert reply.json()["code"] == 16


async def test_alg_none_token(api: httpx.AsyncClient, user: User) -> None:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(token_claims(user))}."
    reply = await api.get("/v1/account", headers={"authorization": f"Bearer {unsigned}"})
    assert reply.status_code == 401


async def test_wrong_audience(stack: Stack, api: httpx.AsyncClient, user: User) -> None:
    kid, key = signing_key(stack)
    token = jwt.encode(
        token_claims(user, aud="someone-else"), key, algorithm="EdDSA", headers={"kid": kid}
    )
    reply = await api.get("/v1/account", headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 403  # Envoy: a valid signature, but not for this API
    assert reply.json()["code"] == 7
    assert "audience" in reply.json()["message"].lower()


async def test_spoofed_identity_headers_are_ignored(api: httpx.AsyncClient) -> None:
    alice = await register(api, deposit="100")
    bob = await register(api, deposit="200")
    spoof = {"x-user-id": bob.user_id, "x-shard": "7", "x-jwt-payload": "e30"}
    # Without a token the spoof gets nothing.
    bare = await api.get("/v1/account", headers=spoof)
    assert bare.status_code == 401
    # With Alice's token it is Alice's account, whatever the headers claim.
    mine = await api.get("/v1/account", headers={**alice.auth, **spoof})
    assert mine.status_code == 200
    assert Decimal(mine.json()["account"]["balance"]) == Decimal("100")
    me = await api.get("/v1/me", headers={**alice.auth, **spoof})
    assert me.json()["user"]["userId"] == alice.user_id


def _nobody() -> str:
    """A fresh unknown email: Auth's own per-account backoff never kicks in, so every 429 in
    these tests is the edge's per-address limit."""
    return f"nobody-{uuid.uuid4().hex[:12]}@example.com"


async def test_login_rate_limit_per_client(stack: Stack, api: httpx.AsyncClient) -> None:
    """Another loopback address is another client: it runs out of its own bucket (429 with a
    JSON status) while this test session's usual address keeps logging in."""
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.9")
    attempts = AUTH_RATE_BURST + 20
    async with httpx.AsyncClient(
        base_url=stack.url, transport=transport, trust_env=False, timeout=60
    ) as other:
        # All at once: the bucket refills continuously (burst per window), and each login
        # costs a password hash, so one at a time would never run it dry.
        replies = await asyncio.gather(
            *[
                other.post("/v1/auth/login", json={"email": _nobody(), "password": "x"})
                for _ in range(attempts)
            ]
        )
    statuses = [reply.status_code for reply in replies]
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= AUTH_RATE_BURST + 2  # + what refilled meanwhile
    assert statuses.count(429) >= attempts - AUTH_RATE_BURST - 2
    limited = next(reply for reply in replies if reply.status_code == 429)
    assert limited.headers["content-type"] == "application/json"
    assert limited.json()["code"] == 8
    user = await register(api, deposit=None)
    fine = await api.post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert fine.status_code == 200


async def test_failed_logins_back_off_per_account_at_the_edge(stack: Stack) -> None:
    """Auth's own per-account backoff, seen by a REST client: a JSON 429 with its reason, the
    same for an unknown email; other accounts are not affected."""
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.11")  # a bucket of its own
    async with httpx.AsyncClient(
        base_url=stack.url, transport=transport, trust_env=False, timeout=60
    ) as other:
        victim = await register(other, deposit=None)
        answers = {}
        for email in (victim.email, _nobody()):
            for _ in range(LoginBackoff().free_failures + 1):
                wrong = await other.post(
                    "/v1/auth/login", json={"email": email, "password": "wrong-password-1"}
                )
                assert wrong.status_code == 401, wrong.text
            blocked = await other.post(
                "/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            answers[email] = (blocked.status_code, blocked.json()["details"][0]["reason"])
        assert set(answers.values()) == {(429, "LOGIN_THROTTLED")}
        bystander = await register(other, deposit=None)
        fine = await other.post(
            "/v1/auth/login", json={"email": bystander.email, "password": PASSWORD}
        )
        assert fine.status_code == 200, fine.text


async def test_rate_limit_ignores_forwarded_for(stack: Stack) -> None:
    """A client cannot get a fresh bucket per request by writing x-forwarded-for."""
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.10")
    attempts = AUTH_RATE_BURST + 20
    async with httpx.AsyncClient(
        base_url=stack.url, transport=transport, trust_env=False, timeout=60
    ) as other:
        replies = await asyncio.gather(
            *[
                other.post(
                    "/v1/auth/login",
                    json={"email": _nobody(), "password": "x"},
                    headers={"x-forwarded-for": f"10.1.{n // 250}.{n % 250 + 1}"},
                )
                for n in range(attempts)
            ]
        )
    statuses = [reply.status_code for reply in replies]
    assert statuses.count(429) >= attempts - AUTH_RATE_BURST - 2, statuses


async def test_publish_quotes_is_not_routable(
    stack: Stack, api: httpx.AsyncClient, user: User
) -> None:
    rest = await api.post("/exness.market.v1.MarketDataService/PublishQuotes", json={})
    assert rest.status_code == 404
    service_token = (stack.data_dir / "service-token").read_text().strip()
    async with grpc.aio.insecure_channel(stack.edge) as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        quote = market_pb2.Quote(symbol="BTCUSD", bid="1.00", ask="1.01")
        quote.time.GetCurrentTime()
        for metadata in (
            (("x-service-token", service_token),),
            (("authorization", f"Bearer {user.access_token}"), ("x-service-token", service_token)),
        ):
            call = stub.PublishQuotes(
                iter([market_pb2.PublishQuotesRequest(quote=quote)]), metadata=metadata
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.UNIMPLEMENTED,
            )
    # Nothing was published: BTCUSD still trades far from 1.00.
    latest = (await api.get("/v1/quotes/BTCUSD")).json()["quote"]
    assert Decimal(latest["bid"]) > 100


async def test_cors_preflight(api: httpx.AsyncClient, stack: Stack) -> None:
    own = f"http://localhost:{stack.edge.rsplit(':', 1)[1]}"
    request = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    allowed = await api.options("/v1/orders", headers={"origin": own, **request})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == own
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    grpc_web = await api.options(
        "/exness.trading.v1.TradingService/PlaceOrder", headers={"origin": own, **request}
    )
    assert "grpc-status" in grpc_web.headers["access-control-expose-headers"]

    other = await api.options("/v1/orders", headers={"origin": "https://evil.example", **request})
    assert other.status_code >= 400
    assert "access-control-allow-origin" not in other.headers


async def test_bad_json_changes_nothing(api: httpx.AsyncClient, user: User) -> None:
    before = await _balance(api, user)
    cases = [
        ('{"amount": ', "bad JSON"),
        ('{"amount": "5", "bonus": "1000000"}', "unknown field"),
        ('{"amount": {"value": 5}}', "wrong type"),
        ('{"amount": [1, 2]}', "wrong type"),
        ('["amount"]', "not an object"),
        ('{"amount": "5.123"}', "too many decimals"),
    ]
    for body, why in cases:
        reply = await api.post(
            "/v1/account:deposit",
            content=body,
            headers={**user.auth, "content-type": "application/json"},
        )
        assert 400 <= reply.status_code < 500, (why, reply.status_code, reply.text)
        assert reply.headers["content-type"] == "application/json", why
        assert reply.json()["code"] == 3, (why, reply.text)
    unknown = await api.post(
        "/v1/orders",
        headers=user.auth,
        json={
            "symbol": "BTCUSD",
            "side": "ORDER_SIDE_BUY",
            "type": "ORDER_TYPE_MARKET",
            "volume": "0.01",
            "stopLos": "1",
        },
    )
    assert unknown.status_code == 400
    assert "stopLos" in unknown.json()["message"]
    oversized = await api.post(
        "/v1/orders", headers=user.auth, content='{"symbol": "' + "A" * 200_000 + '"}'
    )
    assert oversized.status_code == 413
    assert oversized.json()["code"] == 8
    wrong_enum = await api.post(
        "/v1/orders",
        headers=user.auth,
        json={
            "symbol": "BTCUSD",
            "side": "SIDEWAYS",
            "type": "ORDER_TYPE_MARKET",
            "volume": "0.01",
        },
    )
    assert wrong_enum.status_code == 400
    unknown_param = await api.get("/v1/positions", params={"evil": "1"}, headers=user.auth)
    assert unknown_param.status_code == 400

    assert await _balance(api, user) == before
    assert (await api.get("/v1/positions", headers=user.auth)).json()["positions"] == []
    assert (await api.get("/v1/orders", headers=user.auth)).json()["orders"] == []
