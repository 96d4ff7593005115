"""Streams quotes into MarketData over one long-lived PublishQuotes call, and opens a new call
(after a backoff with jitter) whenever it drops. A wrong service credential is fatal: retrying
cannot fix it."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator

import grpc
from exness.market.v1 import market_pb2, market_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from kit.backoff import Backoff
from kit.obs.tracing import traceparent
from kit.rpc.interceptors import SERVICE_TOKEN_HEADER
from services.poller.sources import QuoteBuffer

log = logging.getLogger(__name__)
tracer = trace.get_tracer("exness.poller")

_CHANNEL_OPTIONS = [
    # Notice a dead connection within ~30 s even when no quote flows.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


class FatalPublishError(RuntimeError):
    pass


class MarketPublisher:
    def __init__(
        self,
        address: str,
        service_token: str,
        source: str,
        backoff: Backoff | None = None,
        trace_ratio: float = 0.0,
    ) -> None:
        self._address = address
        self._metadata = ((SERVICE_TOKEN_HEADER, service_token),)
        self._source = source
        self._backoff = backoff or Backoff()
        self.sent = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.calls = 0
        # The share of quotes traced (each its own trace, from here to the fan-out).
        self._trace_ratio = trace_ratio

    async def _requests(
        self, buffer: QuoteBuffer
    ) -> AsyncIterator[market_pb2.PublishQuotesRequest]:
        while (quote := await buffer.get()) is not None:
            request = market_pb2.PublishQuotesRequest(source=self._source)
            request.quote.symbol = quote.symbol
            request.quote.bid = quote.bid
            request.quote.ask = quote.ask
            request.quote.time.FromNanoseconds(quote.time_ns)
            if self._trace_ratio and random.random() < self._trace_ratio:
                request.traceparent = self._trace(request)
            self.sent += 1
            yield request

    def _trace(self, request: market_pb2.PublishQuotesRequest) -> str:
        """Starts a quote's trace; its traceparent ("" when tracing is off)."""
        span = tracer.start_span(
            "quote send",
            kind=SpanKind.PRODUCER,
            attributes={"exness.symbol": request.quote.symbol, "exness.source": self._source},
        )
        span.end()
        context = span.get_span_context()
        return traceparent(context) if context.is_valid else ""

    async def run(self, buffer: QuoteBuffer) -> None:
        """Returns once the buffer is closed and everything in it was sent."""
        while True:
            started = time.monotonic()
            self.calls += 1
            try:
                async with grpc.aio.insecure_channel(
                    self._address, options=_CHANNEL_OPTIONS
                ) as channel:
                    stub = market_pb2_grpc.MarketDataServiceStub(channel)
                    response = await stub.PublishQuotes(
                        self._requests(buffer), metadata=self._metadata, wait_for_ready=True
                    )
                self._record(response)
                if buffer.closed and len(buffer) == 0:
                    return
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    raise FatalPublishError(
                        f"MarketData at {self._address} refused the service credential: "
                        f"{exc.details()}"
                    ) from exc
                log.warning(
                    "PublishQuotes dropped", extra={"code": code.name, "details": exc.details()}
                )
            if time.monotonic() - started > 10:
                self._backoff.reset()
            delay = await self._backoff.sleep()
            log.info("PublishQuotes reconnecting", extra={"after_s": round(delay, 2)})

    def _record(self, response: market_pb2.PublishQuotesResponse) -> None:
        self.accepted += response.accepted
        self.rejected.update(dict(response.rejected))
        log.info(
            "PublishQuotes call finished",
            extra={"accepted": response.accepted, "rejected": dict(response.rejected)},
        )
