"""The request pipeline every service runs before and around its handlers:

1. access: a method is PUBLIC, needs a USER access token, the internal SERVICE credential, or
   the OPERATOR credential (admin services), as its .proto declares (kit.rpc.access); the
   verified caller is put in a context variable (services never trust ids in bodies);
2. decoding that cannot fail: a request too large for its method, or not a valid message,
   is answered RESOURCE_EXHAUSTED / INVALID_ARGUMENT (kit.rpc.decoding);
3. validation of the request against the rules declared in the .proto;
4. error mapping: ServiceError -> its google.rpc.Status; an unimplemented method stays
   UNIMPLEMENTED; anything else -> INTERNAL, logged;
5. a server stream of a USER method ends with UNAUTHENTICATED when its access token expires
   (the client reconnects with a fresh one), or at once when its session is revoked (logout;
   kit.rpc.revocations), which also refuses every further call with that token;
6. one structured log line per call (method, code, duration).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
import psycopg
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

from kit.rpc import validation
from kit.rpc.access import Access, access_of
from kit.rpc.decoding import Undecodable, checked, guarded
from kit.rpc.errors import (
    ServiceError,
    internal_status,
    invalid_argument,
    permission_denied,
    session_revoked,
    unauthenticated,
    unavailable,
)
from kit.rpc.identity import (
    Caller,
    TokenVerifier,
    bearer_token,
    reset_current_caller,
    set_current_caller,
)
from kit.rpc.revocations import RevokedSessions
from kit.rpc.stream_lifetime import StreamLifetime, write_replies

log = logging.getLogger("exness.rpc")
tracer = trace.get_tracer("exness.rpc")

SERVICE_TOKEN_HEADER = "x-service-token"
OPERATOR_TOKEN_HEADER = "x-operator-token"
# What psycopg raises while PostgreSQL is down or restarting: a broken connection, an
# administrator shutdown, or the pool's PoolTimeout when no connection came within its wait.
DATABASE_DOWN = (psycopg.OperationalError,)
_UNTRACED = contextlib.nullcontext()
# Every request message of the platform is small (the edge refuses bodies over 64 KiB too);
# the bound applies after decompression. Methods that need more say so per method.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024


class RequestPipeline(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Each method's access comes from its descriptor: methods that declare none need a USER
    token (deny by default); gRPC health and reflection are always public."""

    def __init__(
        self,
        verifier: TokenVerifier | None,
        service_token: str | None = None,
        operator_token: str | None = None,
        max_request_bytes: Mapping[str, int] | None = None,
        *,
        access: Callable[[str], Access] = access_of,
        revocations: RevokedSessions | None = None,
    ) -> None:
        # `access` is each method's declared access; tests may stand a probe in for a contract.
        self._access_of = access
        self.revocations = revocations
        self._verifier = verifier
        self._service_token = service_token
        self._operator_token = operator_token
        self._max_request_bytes = dict(max_request_bytes or {})

    def max_request_bytes_of(self, method: str) -> int:
        return self._max_request_bytes.get(method, DEFAULT_MAX_REQUEST_BYTES)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        access = self._access_of(method)
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
        caller = await self._verifier.verify(token)
        if self.revocations is not None and self.revocations.is_revoked(caller.session_id):
            raise session_revoked()
        return caller


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
        # How long a server stream may run: a USER caller's token, and its session.
        self.lifetime = StreamLifetime(None)
        self._unwatch: Callable[[], None] | None = None

    async def _enter(self, request: Any | None, streaming: bool) -> Any:
        caller = await self.pipeline.authenticate(self.access, self.metadata)
        if isinstance(caller, Caller):
            self.lifetime = StreamLifetime(caller.expires_at)
            revocations = self.pipeline.revocations
            if streaming and revocations is not None and caller.session_id:
                self._unwatch = revocations.watch(caller.session_id, self.lifetime.revoke)
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
        if isinstance(exc, DATABASE_DOWN):
            # No connection came, or the one we had broke: the request changed nothing that
            # was committed, and a retry once the database is back is the answer.
            exc = unavailable("DATABASE_UNAVAILABLE", "the database is unavailable; retry shortly")
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
        self, context: grpc.aio.ServicerContext, request: Any | None, streaming: bool = False
    ) -> AsyncIterator[None]:
        """Authenticates and validates on entry; maps whatever the handler raises to a status;
        logs the call's duration."""
        started = time.perf_counter()
        token = None
        try:
            token = await self._enter(request, streaming)
            yield
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await self._fail(context, exc)  # aborts the call: raises AbortError
        finally:
            if self._unwatch is not None:
                self._unwatch()
            if token is not None:
                # Should a stream's handler ever be closed by the event loop's generator
                # finaliser, that runs in another Context: nothing of ours to reset there.
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
            async with self._scope(context, request, streaming=True):
                await write_replies(inner(request, context), context, self.lifetime)
            return
            yield  # an async generator to the layers above, which yields nothing: see write_replies

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
            async with self._scope(context, None, streaming=True):
                await write_replies(inner(checked(requests), context), context, self.lifetime)
            return
            yield  # an async generator to the layers above, which yields nothing: see write_replies

        return behaviour
