"""Per-RPC Prometheus metrics, as a grpc.aio server interceptor.

Names and labels follow the grpc-ecosystem convention (go-grpc-middleware / py-grpc-prometheus),
so the common gRPC dashboards and alerts work unchanged:
  grpc_server_started_total{grpc_type, grpc_service, grpc_method}
  grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}
  grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}  (histogram)
  grpc_server_in_flight{grpc_type, grpc_service, grpc_method}  (calls and streams now open)

It runs first in the chain, so calls refused by the request pipeline (bad token, invalid
request) are counted with the code the client received.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram

from kit.obs.metrics import metrics_enabled

STARTED = Counter(
    "grpc_server_started_total",
    "RPCs started on the server.",
    ["grpc_type", "grpc_service", "grpc_method"],
)
HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by gRPC status code.",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
)
HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its end (the whole stream for streaming RPCs).",
    ["grpc_type", "grpc_service", "grpc_method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge(
    "grpc_server_in_flight",
    "RPCs in progress (open streams included).",
    ["grpc_type", "grpc_service", "grpc_method"],
)


@dataclass
class _MethodMetrics:
    """The labelled children of one method, resolved once (a label lookup per call is slow)."""

    grpc_type: str
    service: str
    method: str
    started: Any
    handling: Any
    in_flight: Any
    by_code: dict[grpc.StatusCode, Any] = field(default_factory=dict)

    def handled(self, code: grpc.StatusCode) -> None:
        counter = self.by_code.get(code)
        if counter is None:
            counter = self.by_code[code] = HANDLED.labels(
                self.grpc_type, self.service, self.method, code.name
            )
        counter.inc()


def _split(full_method: str) -> tuple[str, str]:
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


def _code_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # some grpcio versions report the number
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    if exc is None:
        return grpc.StatusCode.OK
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):  # the client went away
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN  # what grpc answers for an exception nobody mapped


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """The interceptors to put first in every server's chain (none when metrics are off)."""
    return [RpcMetrics()] if metrics_enabled() else []


class RpcMetrics(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self._methods: dict[tuple[str, str], _MethodMetrics] = {}

    def _metrics(self, full_method: str, grpc_type: str) -> _MethodMetrics:
        key = (full_method, grpc_type)
        found = self._methods.get(key)
        if found is None:
            service, method = _split(full_method)
            found = self._methods[key] = _MethodMetrics(
                grpc_type,
                service,
                method,
                STARTED.labels(grpc_type, service, method),
                HANDLING.labels(grpc_type, service, method),
                IN_FLIGHT.labels(grpc_type, service, method),
            )
        return found

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary(self._metrics(method, "unary"), handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _unary(self._metrics(method, "client_stream"), handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(self._metrics(method, "server_stream"), handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _streaming(self._metrics(method, "bidi_stream"), handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _unary(
    m: _MethodMetrics, inner: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
        m.started.inc()
        m.in_flight.inc()
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            result = inner(request, context)
            # grpc.aio also takes plain functions as handlers.
            return await result if inspect.isawaitable(result) else result
        except BaseException as exc:
            failure = exc
            raise
        finally:
            m.in_flight.dec()
            m.handling.observe(time.perf_counter() - started)
            m.handled(_code_of(context, failure))

    return behaviour


def _streaming(m: _MethodMetrics, inner: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        m.started.inc()
        m.in_flight.inc()
        started = time.perf_counter()
        failure: BaseException | None = None
        try:
            result = inner(request, context)
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:  # a handler that writes with context.write()
                await result
        except BaseException as exc:
            failure = exc
            raise
        finally:
            m.in_flight.dec()
            m.handling.observe(time.perf_counter() - started)
            m.handled(_code_of(context, failure))

    return behaviour
