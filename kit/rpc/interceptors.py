"""The request pipeline every service runs before and around its handlers:

1. access: a method is PUBLIC, needs a USER access token, the internal SERVICE credential, or
   the OPERATOR credential (admin services);
   the verified caller is put in a context variable (services never trust ids in bodies);
2. decoding that cannot fail: a request too large for its method, or not a valid message,
   is answered RESOURCE_EXHAUSTED / INVALID_ARGUMENT (kit.rpc.decoding);
3. validation of the request against the rules declared in the .proto;
4. error mapping: ServiceError -> its google.rpc.Status; an unimplemented method stays
   UNIMPLEMENTED; anything else -> INTERNAL, logged;
5. a server stream of a USER method ends with UNAUTHENTICATED when its access token expires
   (the client reconnects with a fresh one);
6. one structured log line per call (method, code, duration).
"""

from __future__ import annotations

import contextlib
import enum
import hmac
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

from kit.rpc import validation
from kit.rpc.decoding import Undecodable, checked, guarded
from kit.rpc.errors import (
    ServiceError,
    internal_status,
    invalid_argument,
    permission_denied,
    unauthenticated,
)
from kit.rpc.identity import (
    Caller,
    TokenVerifier,
    bearer_token,
    reset_current_caller,
    set_current_caller,
)
from kit.rpc.stream_lifetime import until_expiry, write_until_expiry

log = logging.getLogger("exness.rpc")
tracer = trace.get_tracer("exness.rpc")

SERVICE_TOKEN_HEADER = "x-service-token"
OPERATOR_TOKEN_HEADER = "x-operator-token"
_ALWAYS_PUBLIC = ("/grpc.health.v1.", "/grpc.reflection.")
_UNTRACED = contextlib.nullcontext()
# Every request message of the platform is small (the edge refuses bodies over 64 KiB too);
# the bound applies after decompression. Methods that need more say so per method.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024


class Access(enum.Enum):
    PUBLIC = "public"
    USER = "user"
    SERVICE = "service"
    OPERATOR = "operator"


class RequestPipeline(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Methods not named in `access` need a USER token (deny by default), except gRPC health
    and reflection, which are always public."""

    def __init__(
        self,
        access: Mapping[str, Access],
        verifier: TokenVerifier | None,
        service_token: str | None = None,
        operator_token: str | None = None,
        max_request_bytes: Mapping[str, int] | None = None,
    ) -> None:
        self._access = dict(access)
        self._verifier = verifier
        self._service_token = service_token
        self._operator_token = operator_token
        self._max_request_bytes = dict(max_request_bytes or {})

    def max_request_bytes_of(self, method: str) -> int:
        return self._max_request_bytes.get(method, DEFAULT_MAX_REQUEST_BYTES)

    def access_of(self, method: str) -> Access:
        if method.startswith(_ALWAYS_PUBLIC):
            return Access.PUBLIC
        return self._access.get(method, Access.USER)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        access = self.access_of(method)
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        guard = _Guard(self, method, access, metadata)
        deserializer = guarded(handler.request_deserializer, self.max_request_bytes_of(method))
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                guard.unary_unary(handler.unary_unary),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                guard.unary_stream(handler.unary_stream),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                guard.stream_unary(handler.stream_unary),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            guard.stream_stream(handler.stream_stream),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )

    async def authenticate(self, access: Access, metadata: Mapping[str, str]) -> Any:
        """The caller for USER methods, None otherwise; raises for a missing/bad credential."""
        if access is Access.PUBLIC:
            return None
        if access is Access.SERVICE:
            _check_secret(
                metadata, SERVICE_TOKEN_HEADER, self._service_token, "the service credential"
            )
            return None
        if access is Access.OPERATOR:
            _check_secret(
                metadata, OPERATOR_TOKEN_HEADER, self._operator_token, "the operator credential"
            )
            return None
        token = bearer_token(metadata)
        if token is None:
            raise unauthenticated("this method needs an access token (authorization: Bearer ...)")
        if self._verifier is None:  # pragma: no cover - a wiring mistake, not a user error
            raise ServiceError(grpc.StatusCode.INTERNAL, "INTERNAL", "no token verifier")
        return await self._verifier.verify(token)


def _check_secret(
    metadata: Mapping[str, str], header: str, expected: str | None, what: str
) -> None:
    """A shared-secret credential (internal callers, operators) presented in `header`."""
    presented = metadata.get(header)
    if presented is None:
        if "authorization" in metadata:
            raise permission_denied("this method is internal: user tokens may not call it")
        raise unauthenticated(f"this method needs {what}")
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise unauthenticated(f"{what} is wrong")


class _Guard:
    """Wraps one call's behaviour with the pipeline steps."""

    def __init__(
        self, pipeline: RequestPipeline, method: str, access: Access, metadata: Mapping[str, str]
    ) -> None:
        self.pipeline = pipeline
        self.method = method
        self.access = access
        self.metadata = metadata
        self.expires_at: float | None = None  # of a USER caller's token

    async def _enter(self, request: Any | None) -> Any:
        caller = await self.pipeline.authenticate(self.access, self.metadata)
        self.expires_at = caller.expires_at if isinstance(caller, Caller) else None
        if isinstance(request, Undecodable):
            raise request.error
        if request is not None:
            # A span only inside a traced call (health checks are not traced).
            traced = trace.get_current_span().is_recording()
            with tracer.start_as_current_span("validate request") if traced else _UNTRACED:
                found = validation.violations(request)
                if found:
                    raise invalid_argument(found)
        return set_current_caller(caller)

    async def _fail(self, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        if isinstance(exc, ServiceError):
            status = exc.to_status()
            level = logging.INFO
        elif isinstance(exc, NotImplementedError):
            # A generated servicer's stub for a method this server does not implement.
            status = status_pb2.Status(code=code_pb2.UNIMPLEMENTED, message="not implemented")
            level = logging.INFO
        else:
            status = internal_status()
            level = logging.ERROR
        log.log(
            level,
            "rpc failed",
            extra={"method": self.method, "code": status.code, "error": str(exc)},
            exc_info=exc if level == logging.ERROR else None,
        )
        await context.abort_with_status(rpc_status.to_status(status))

    @contextlib.asynccontextmanager
    async def _scope(
        self, context: grpc.aio.ServicerContext, request: Any | None
    ) -> AsyncIterator[None]:
        """Authenticates and validates on entry; maps whatever the handler raises to a status;
        logs the call's duration."""
        started = time.perf_counter()
        token = None
        try:
            token = await self._enter(request)
            yield
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await self._fail(context, exc)  # aborts the call: raises AbortError
        finally:
            if token is not None:
                # A stream the client cancelled is closed by the event loop's generator
                # finaliser, in another Context: there is nothing of ours to reset there.
                with contextlib.suppress(ValueError):
                    reset_current_caller(token)
            if log.isEnabledFor(logging.DEBUG):
                elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
                log.debug("rpc done", extra={"method": self.method, "ms": elapsed_ms})

    def unary_unary(self, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with self._scope(context, request):
                return await inner(request, context)
            raise AssertionError("unreachable: a failed call was aborted")

        return behaviour

    def unary_stream(self, inner: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._scope(context, request):
                result = inner(request, context)
                if inspect.isasyncgen(result):
                    async for item in until_expiry(result, self.expires_at):
                        yield item
                else:  # a handler that writes with context.write()
                    await write_until_expiry(result, self.expires_at)

        return behaviour

    def stream_unary(self, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        # Streamed requests are validated by their handler, message by message.
        async def behaviour(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            async with self._scope(context, None):
                return await inner(checked(requests), context)
            raise AssertionError("unreachable: a failed call was aborted")

        return behaviour

    def stream_stream(self, inner: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
        async def behaviour(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._scope(context, None):
                replies = inner(checked(requests), context)
                async for item in until_expiry(replies, self.expires_at):
                    yield item

        return behaviour
