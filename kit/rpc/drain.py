"""Draining a grpc.aio server before it stops.

`grpc.aio.Server.stop(grace)` alone is not a drain: calls that have reached the server but not
yet a handler are ended CANCELLED (grpc/grpc#41785: clients take it for their own cancel and do
not retry), and it returns before handlers that aborted have finished (grpc/grpc#37239). So a
stopping server first keeps running with this gate closed: calls that start now are refused with
UNAVAILABLE (no ErrorInfo: safe to retry, e.g. on another replica), unary calls already running
finish, and only then is the server itself stopped. A client stream in progress (PublishQuotes)
ends as if its client had finished sending: its handler answers what it received, and the client
opens a new call (on another replica, or on this service once restarted) instead of holding the
stop for the whole grace period. Server streams are not waited for: they end with the server, and
their clients reconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

# The gate is drained once no call is in progress and none has reached it for this long: calls
# still queued on their way to a handler (a busy process dispatches them slowly) come through
# and are refused, so the stop that follows finds none to cancel.
QUIET_S = 0.25

REFUSAL = "the server is shutting down; retry"


class DrainGate(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Outermost interceptor: counts unary calls in progress; refuses new calls once closed."""

    def __init__(self) -> None:
        self._closed = False
        # Handlers of client streams parked waiting for the client's next message, and those
        # the drain woke from that wait (see _until_closed).
        self._reading: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_arrival = 0.0

    async def drain(self, timeout_s: float) -> bool:
        """Closes the gate and waits (at most `timeout_s`) until no unary call is in progress
        and no call has arrived for QUIET_S. True if drained in time."""
        self._closed = True
        for task in self._reading:
            self._cut.add(task)
            task.cancel()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await asyncio.wait_for(self._idle.wait(), deadline - time.monotonic())
            except TimeoutError:
                return False
            quiet_until = self._last_arrival + QUIET_S
            now = time.monotonic()
            if now >= quiet_until:
                return True
            if quiet_until > deadline:
                return False
            await asyncio.sleep(quiet_until - now)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._counted(handler.unary_unary), **kwargs)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._gated(handler.unary_stream), **kwargs)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._counted(self._ending_at_drain(handler.stream_unary)), **kwargs
            )
        return grpc.stream_stream_rpc_method_handler(self._gated(handler.stream_stream), **kwargs)

    def _counted(self, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            # Decided when the handler starts, not at interception: a call intercepted just
            # before the gate closed is either counted here or refused, never lost between.
            self._last_arrival = time.monotonic()
            if self._closed:
                await context.abort(grpc.StatusCode.UNAVAILABLE, REFUSAL)
            self._in_flight += 1
            self._idle.clear()
            try:
                return await inner(request, context)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

        return behaviour

    def _ending_at_drain(
        self, inner: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def behaviour(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            return await inner(self._until_closed(requests), context)

        return behaviour

    async def _until_closed(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The client's messages until the gate closes, then the end of the stream. Nothing
        per message but a set update: a handler is woken only if the drain finds it parked
        in the read, and that cancel, landing in the read, ends the stream instead."""
        task = asyncio.current_task()
        assert task is not None
        iterator = aiter(requests)
        while not self._closed:
            self._reading.add(task)
            try:
                message = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if task not in self._cut:
                    raise
                task.uncancel()
                return
            finally:
                self._reading.discard(task)
                self._cut.discard(task)
            yield message

    def _gated(self, inner: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            self._last_arrival = time.monotonic()
            if self._closed:
                await context.abort(grpc.StatusCode.UNAVAILABLE, REFUSAL)
            async for response in inner(request, context):
                yield response

        return behaviour
