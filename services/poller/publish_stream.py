"""Streams quotes into MarketData over one long-lived PublishQuotes call, and opens a new call
(after a backoff with jitter) whenever it drops. A wrong service credential is fatal: retrying
cannot fix it.

With several MarketData replicas, any healthy one will do: each new call goes to the first
replica, from the one after the replica whose call dropped, that reports SERVING on
grpc.health.v1, so a dead or NOT_SERVING replica does not stop the feed."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import grpc
from exness.market.v1 import market_pb2, market_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
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


RECONNECT_CAP_S = 2.0
HEALTH_SERVICE = "exness.market.v1.MarketDataService"
HEALTH_TIMEOUT_S = 1.0


class FatalPublishError(RuntimeError):
    pass


class MarketPublisher:
    def __init__(
        self,
        addresses: Sequence[str] | str,
        service_token: str,
        source: str,
        backoff: Backoff | None = None,
        trace_ratio: float = 0.0,
    ) -> None:
        # "host:port" or several, comma-separated (one per MarketData replica).
        if isinstance(addresses, str):
            addresses = parse_addresses(addresses)
        if not addresses:
            raise ValueError("no MarketData address")
        self._addresses = list(addresses)
        self._turn = 0  # index of the replica the next call tries first
        self.address = self._addresses[0]  # the replica of the current (or last) call
        self._metadata = ((SERVICE_TOKEN_HEADER, service_token),)
        self._source = source
        # A short ceiling: MarketData is close by, and after an outage of its broker the feed
        # must resume within seconds, not after a 30 s backoff.
        self._backoff = backoff or Backoff(cap_s=RECONNECT_CAP_S)
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
            address = self.address = await self._pick()
            self.calls += 1
            try:
                async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
                    stub = market_pb2_grpc.MarketDataServiceStub(channel)
                    response = await stub.PublishQuotes(
                        self._requests(buffer),
                        metadata=self._metadata,
                        # One replica: wait for it. Several: fail fast and try the next.
                        wait_for_ready=len(self._addresses) == 1,
                    )
                self._record(response)
                if buffer.closed and len(buffer) == 0:
                    return
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    raise FatalPublishError(
                        f"MarketData at {address} refused the service credential: {exc.details()}"
                    ) from exc
                log.warning(
                    "PublishQuotes dropped",
                    extra={"code": code.name, "details": exc.details(), "address": address},
                )
                self._turn = (self._addresses.index(address) + 1) % len(self._addresses)
            if time.monotonic() - started > 10:
                self._backoff.reset()
            delay = await self._backoff.sleep()
            log.info("PublishQuotes reconnecting", extra={"after_s": round(delay, 2)})

    async def _pick(self) -> str:
        """The first replica, from the one in turn, that reports SERVING; while none does, asks
        again after a backoff. A single address is used as it is (the call waits for it)."""
        if len(self._addresses) == 1:
            return self._addresses[0]
        while True:
            for step in range(len(self._addresses)):
                address = self._addresses[(self._turn + step) % len(self._addresses)]
                if await serving(address):
                    return address
            delay = await self._backoff.sleep()
            log.warning(
                "no MarketData replica is SERVING",
                extra={"addresses": self._addresses, "after_s": round(delay, 2)},
            )

    def _record(self, response: market_pb2.PublishQuotesResponse) -> None:
        self.accepted += response.accepted
        self.rejected.update(dict(response.rejected))
        log.info(
            "PublishQuotes call finished",
            extra={"accepted": response.accepted, "rejected": dict(response.rejected)},
        )


def parse_addresses(text: str) -> list[str]:
    """ "host:port[,host:port...]" -> the addresses, in order."""
    return [part.strip() for part in text.split(",") if part.strip()]


async def serving(address: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """True when MarketData at `address` answers its health check with SERVING."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=timeout_s
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
