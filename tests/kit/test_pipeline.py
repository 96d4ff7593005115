"""The request pipeline (access, validation, error mapping) in a real grpc.aio server.

The servicer here is the kit's test subject: it exercises each pipeline path with the
MarketData contract's method shapes (unary, server stream, client stream)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from exness.market.v1 import market_pb2, market_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kit.rpc.errors import not_found
from kit.rpc.identity import StaticKeySource, TokenVerifier, current_caller
from kit.rpc.interceptors import SERVICE_TOKEN_HEADER, Access, RequestPipeline
from kit.rpc.server import GrpcServer, ServiceSpec
from tests.support.grpc_errors import failure_of
from tests.support.wire import inflating_get_quote

SERVICE = "exness.market.v1.MarketDataService"
KID = "probe-key"
SIGNING_KEY = Ed25519PrivateKey.generate()


def user_token(lifetime_s: float) -> str:
    now = time.time()
    claims: dict[str, object] = {"iss": "iss", "aud": "aud", "sub": "user-1"}
    claims["jti"] = str(uuid.uuid4())
    claims |= {"iat": int(now), "exp": int(now + lifetime_s)}
    return jwt.encode(claims, SIGNING_KEY, algorithm="EdDSA", headers={"kid": KID})


def bearer(lifetime_s: float = 300) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {user_token(lifetime_s)}"),)


class ProbeServicer(market_pb2_grpc.MarketDataServiceServicer):
    async def ListInstruments(self, request: Any, context: Any) -> Any:
        raise NotImplementedError  # not probed

    async def GetCandles(self, request: Any, context: Any) -> Any:
        raise NotImplementedError  # not probed

    async def GetQuote(
        self, request: market_pb2.GetQuoteRequest, context: Any
    ) -> market_pb2.GetQuoteResponse:
        if request.symbol == "BOOM":
            raise RuntimeError("secret internal detail")
        if request.symbol == "SLOW":
            await asyncio.sleep(1.0)
        if request.symbol == "MISSING":
            raise not_found("UNKNOWN_SYMBOL", "no such instrument", symbol=request.symbol)
        return market_pb2.GetQuoteResponse(quote=market_pb2.Quote(symbol=request.symbol, bid="1"))

    async def StreamQuotes(
        self, request: market_pb2.StreamQuotesRequest, context: Any
    ) -> AsyncIterator[market_pb2.StreamQuotesResponse]:
        caller = current_caller()
        for symbol in request.symbols:
            yield market_pb2.StreamQuotesResponse(
                quote=market_pb2.Quote(symbol=symbol, bid=caller.user_id)
            )
            if symbol == "SLOW":  # a quiet market: nothing more for a long while
                await asyncio.sleep(60)
        while "FLOOD" in request.symbols:  # a busy one: as fast as the client takes them
            yield market_pb2.StreamQuotesResponse(quote=market_pb2.Quote(symbol="FLOOD"))

    async def PublishQuotes(self, requests: Any, context: Any) -> market_pb2.PublishQuotesResponse:
        count = 0
        async for _ in requests:
            count += 1
        return market_pb2.PublishQuotesResponse(accepted=count)


@pytest.fixture(scope="module")
async def probe_channel() -> AsyncIterator[grpc.aio.Channel]:
    verifier = TokenVerifier(StaticKeySource({KID: SIGNING_KEY.public_key()}), "iss", "aud")
    pipeline = RequestPipeline(
        {f"/{SERVICE}/GetQuote": Access.PUBLIC, f"/{SERVICE}/PublishQuotes": Access.SERVICE},
        verifier,
        service_token="s3cret",
    )
    server = GrpcServer(
        [
            ServiceSpec(
                SERVICE,
                lambda s: market_pb2_grpc.add_MarketDataServiceServicer_to_server(
                    ProbeServicer(),
                    s,
                ),
            )
        ],
        [pipeline],
    )
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop()


async def test_public_method_and_validation(probe_channel: grpc.aio.Channel) -> None:
    stub = market_pb2_grpc.MarketDataServiceStub(probe_channel)
    reply = await stub.GetQuote(market_pb2.GetQuoteRequest(symbol="BTCUSD"))
    assert reply.quote.symbol == "BTCUSD"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetQuote(market_pb2.GetQuoteRequest(symbol="not a symbol"))
    failure = failure_of(raised.value)
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert set(failure.fields) == {"symbol"}


async def test_domain_errors_carry_their_reason(probe_channel: grpc.aio.Channel) -> None:
    stub = market_pb2_grpc.MarketDataServiceStub(probe_channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetQuote(market_pb2.GetQuoteRequest(symbol="MISSING"))
    failure = failure_of(raised.value)
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_SYMBOL")


async def test_unexpected_errors_are_internal_and_leak_nothing(
    probe_channel: grpc.aio.Channel,
) -> None:
    stub = market_pb2_grpc.MarketDataServiceStub(probe_channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetQuote(market_pb2.GetQuoteRequest(symbol="BOOM"))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (raised.value.details() or "")


async def test_user_methods_are_denied_by_default(probe_channel: grpc.aio.Channel) -> None:
    stub = market_pb2_grpc.MarketDataServiceStub(probe_channel)
    call = stub.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=["BTCUSD"]))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_service_methods_need_the_service_credential(probe_channel: grpc.aio.Channel) -> None:
    stub = market_pb2_grpc.MarketDataServiceStub(probe_channel)

    async def two() -> AsyncIterator[market_pb2.PublishQuotesRequest]:
        for _ in range(2):
            yield market_pb2.PublishQuotesRequest()

    reply = await stub.PublishQuotes(two(), metadata=((SERVICE_TOKEN_HEADER, "s3cret"),))
    assert reply.accepted == 2
    for metadata, code in [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        (((SERVICE_TOKEN_HEADER, "wrong"),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", "Bearer a.user.token"),), grpc.StatusCode.PERMISSION_DENIED),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.PublishQuotes(two(), metadata=metadata)
        assert raised.value.code() == code


async def test_stop_drains_in_flight_calls_and_reports_not_serving() -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server = GrpcServer(
        [
            ServiceSpec(
                SERVICE,
                lambda s: market_pb2_grpc.add_MarketDataServiceServicer_to_server(
                    ProbeServicer(),
                    s,
                ),
            )
        ],
        [RequestPipeline({f"/{SERVICE}/GetQuote": Access.PUBLIC}, None)],
        grace_s=5.0,
    )
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = market_pb2_grpc.MarketDataServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        in_flight = asyncio.ensure_future(stub.GetQuote(market_pb2.GetQuoteRequest(symbol="SLOW")))
        await asyncio.sleep(0.2)
        stopping = asyncio.ensure_future(server.stop())
        reply = await in_flight  # started before the stop: allowed to finish
        assert reply.quote.symbol == "SLOW"
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetQuote(market_pb2.GetQuoteRequest(symbol="BTCUSD"), timeout=2)
        assert raised.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )


def raw_get_quote(channel: grpc.aio.Channel) -> Any:
    """GetQuote taking the request as bytes, so a test can send what no stub would."""
    return channel.unary_unary(
        f"/{SERVICE}/GetQuote",
        request_serializer=lambda raw: raw,
        response_deserializer=market_pb2.GetQuoteResponse.FromString,
    )


async def test_undecodable_requests_are_invalid_argument(
    probe_channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    get_quote = raw_get_quote(probe_channel)
    bad_utf8 = b"\x0a\x04BTC\xff"  # field 1 (symbol), 4 bytes, not UTF-8
    corrupt = b"\x0a\x7fBTC"  # a length running past the end of the message
    with caplog.at_level(logging.DEBUG):
        for body, field in ((bad_utf8, "symbol"), (corrupt, None)):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await get_quote(body)
            failure = failure_of(raised.value)
            assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, (body, failure)
            assert list(failure.fields) == ([field] if field else [])
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert tracebacks == []


async def test_a_message_over_the_method_limit_after_decompression_is_refused(
    probe_channel: grpc.aio.Channel,
) -> None:
    """4 KB on the wire, 3.9 MB once inflated (in a field the method does not even define)."""
    body = inflating_get_quote()
    assert len(gzip.compress(body)) < 8_000
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await raw_get_quote(probe_channel)(body, compression=grpc.Compression.Gzip)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    small = await raw_get_quote(probe_channel)(
        market_pb2.GetQuoteRequest(symbol="BTCUSD").SerializeToString(),
        compression=grpc.Compression.Gzip,
    )
    assert small.quote.symbol == "BTCUSD"


async def test_an_unimplemented_method_stays_unimplemented(
    probe_channel: grpc.aio.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(probe_channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await health.List(health_pb2.HealthListRequest())
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_stream_ends_when_its_token_expires(probe_channel: grpc.aio.Channel) -> None:
    stub = market_pb2_grpc.MarketDataServiceStub(probe_channel)
    call = stub.StreamQuotes(
        market_pb2.StreamQuotesRequest(symbols=["SLOW"]), metadata=bearer(lifetime_s=2)
    )
    first = await call.read()
    assert first.quote.bid == "user-1"
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call.read(), timeout=15)
    assert failure_of(raised.value).code == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - started < 10  # at the token's expiry, not the handler's end
    # A token that lives on keeps its stream.
    lasting = stub.StreamQuotes(
        market_pb2.StreamQuotesRequest(symbols=["A1", "B2"]), metadata=bearer()
    )
    assert [reply.quote.symbol async for reply in lasting] == ["A1", "B2"]


async def test_a_cancelled_stream_leaves_no_task_error(probe_channel: grpc.aio.Channel) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        stub = market_pb2_grpc.MarketDataServiceStub(probe_channel)
        for symbol in ("SLOW", "FLOOD", "SLOW", "FLOOD"):
            call = stub.StreamQuotes(
                market_pb2.StreamQuotesRequest(symbols=[symbol]), metadata=bearer()
            )
            await call.read()
            call.cancel()
        await asyncio.sleep(0.5)
        gc.collect()
        await asyncio.sleep(0.1)
    finally:
        loop.set_exception_handler(previous)
    assert [str(c.get("exception") or c.get("message")) for c in reported] == []
