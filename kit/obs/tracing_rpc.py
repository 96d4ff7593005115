"""Server spans for gRPC calls: the W3C `traceparent` of the caller (Envoy, the poller, a
client) is continued, or a trace starts here; the request id is the caller's `x-request-id`
(Envoy makes one for every request) or a new one. Both are current while the handler and the
rest of the request pipeline run, so every log line of the call names them.

Registered first in kit.rpc.server, so the span covers access checks and validation too.
"""

from __future__ import annotations

import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from kit.logs import REQUEST_ID

REQUEST_ID_HEADER = "x-request-id"
_UNTRACED = ("/grpc.health.v1.", "/grpc.reflection.")
# Codes that mean the server failed (OpenTelemetry's gRPC conventions); the others are the
# caller's mistakes and leave the server span unset.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

tracer = trace.get_tracer("exness.rpc")


class _Call:
    """One call's trace context, request id and span attributes."""

    def __init__(self, method: str, metadata: Any) -> None:
        carrier = {k: v for k, v in (metadata or ()) if isinstance(v, str)}
        self.parent = propagate.extract(carrier)
        self.request_id = carrier.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        self.name = method.lstrip("/")
        service, _, name = self.name.partition("/")
        self.attributes = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": name,
            "exness.request_id": self.request_id,
        }

    def start(self) -> trace.Span:
        return tracer.start_span(
            self.name, context=self.parent, kind=SpanKind.SERVER, attributes=self.attributes
        )


def _finish(span: trace.Span, context: grpc.aio.ServicerContext, failed: bool) -> None:
    code = context.code() if failed else grpc.StatusCode.OK
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


class TracingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(_UNTRACED):
            return handler
        call = _Call(method, details.invocation_metadata)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _single(call, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _streamed(call, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _single(call, handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _streamed(call, handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _single(call: _Call, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Unary and client-streaming calls: one answer."""

    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
        span = call.start()
        token = REQUEST_ID.set(call.request_id)
        failed = False
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                return await inner(request, context)
        except BaseException:
            failed = True
            raise
        finally:
            REQUEST_ID.reset(token)
            _finish(span, context, failed)

    return behaviour


def _streamed(call: _Call, inner: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    """Server-streaming calls: the span lasts until the stream ends."""

    async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        span = call.start()
        token = REQUEST_ID.set(call.request_id)
        failed = False
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                result = inner(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:  # a handler that writes with context.write()
                    await result
        except BaseException:
            failed = True
            raise
        finally:
            # A stream closed from elsewhere (cancelled) runs this in another context.
            with contextlib.suppress(ValueError):
                REQUEST_ID.reset(token)
            _finish(span, context, failed)

    return behaviour
