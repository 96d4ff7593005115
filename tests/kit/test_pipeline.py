"""The request pipeline (access, validation, error mapping) in a real grpc.aio server.

The servicer here is the kit's test subject: it exercises each pipeline path with the
MarketData contract's method shapes (unary, server stream, client stream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from exness.market.v1 import market_pb2, market_pb2_grpc
from exness.trading.v1 import trading_pb2, trading_pb2_grpc

from kit.rpc.errors import not_found
from kit.rpc.identity import StaticKeySource, TokenVerifier
from kit.rpc.interceptors import SERVICE_TOKEN_HEADER, RequestPipeline
from kit.rpc.server import GrpcServer, ServiceSpec
from tests.support.grpc_errors import failure_of

SERVICE = "exness.market.v1.MarketDataService"
TRADING = "exness.trading.v1.TradingService"


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
        for symbol in request.symbols:
            yield market_pb2.StreamQuotesResponse(quote=market_pb2.Quote(symbol=symbol, bid="1"))

    async def PublishQuotes(self, requests: Any, context: Any) -> market_pb2.PublishQuotesResponse:
        count = 0
        async for _ in requests:
            count += 1
        return market_pb2.PublishQuotesResponse(accepted=count)


@pytest.fixture(scope="module")
async def probe_channel() -> AsyncIterator[grpc.aio.Channel]:
    verifier = TokenVerifier(StaticKeySource({}), "iss", "aud")
    pipeline = RequestPipeline(verifier, service_token="s3cret")
    server = GrpcServer(
        [
            ServiceSpec(
                SERVICE,
                lambda s: market_pb2_grpc.add_MarketDataServiceServicer_to_server(
                    ProbeServicer(),
                    s,
                ),
            ),
            ServiceSpec(
                TRADING,
                # No handler is ever reached: the pipeline refuses every call without a token.
                lambda s: trading_pb2_grpc.add_TradingServiceServicer_to_server(
                    trading_pb2_grpc.TradingServiceServicer(),  # type: ignore[abstract]
                    s,
                ),
            ),
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


async def test_access_is_read_from_the_contract(probe_channel: grpc.aio.Channel) -> None:
    """market.proto declares StreamQuotes PUBLIC and trading.proto GetAccount USER: no
    token is needed for the first, the second is refused before its handler runs."""
    market = market_pb2_grpc.MarketDataServiceStub(probe_channel)
    quotes = [r async for r in market.StreamQuotes(market_pb2.StreamQuotesRequest(symbols=["X1"]))]
    assert [r.quote.symbol for r in quotes] == ["X1"]
    trading = trading_pb2_grpc.TradingServiceStub(probe_channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await trading.GetAccount(trading_pb2.GetAccountRequest())
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
        [RequestPipeline(None)],
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
