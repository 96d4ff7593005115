"""A server stream lives no longer than the access token it was opened with: at the token's
expiry it ends with UNAUTHENTICATED (TOKEN_EXPIRED), and the client reconnects with a fresh
token; when the token's session is revoked (the user logged out) it ends at once with
UNAUTHENTICATED (SESSION_REVOKED). Without this a stream checked its token once and could run
for days after expiry, or after the user's access was withdrawn.

The platform's interceptors run every server-streaming handler through write_replies, which
also ends the handler (its `finally` included) as soon as the call is cancelled or its client
goes away, even while a write waits on a client that stopped reading."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any

import grpc

from kit.rpc.errors import session_revoked, token_expired


class StreamLifetime:
    """How long one stream may run: until `expires_at` (Unix time; None: no limit), or until
    revoke() is called, whichever comes first."""

    def __init__(self, expires_at: float | None) -> None:
        self.expires_at = expires_at
        self.revoked = False
        self._running: set[asyncio.Timeout] = set()

    def revoke(self) -> None:
        """Ends the stream now (from any task of its event loop)."""
        self.revoked = True
        for timeout in list(self._running):
            timeout.reschedule(asyncio.get_running_loop().time())

    def _deadline(self) -> float | None:
        loop = asyncio.get_running_loop()
        if self.revoked:
            return loop.time()
        if self.expires_at is None:
            return None
        return loop.time() + (self.expires_at - time.time())

    @contextlib.asynccontextmanager
    async def bound(self) -> AsyncIterator[None]:
        """The enclosed wait is cut short, with UNAUTHENTICATED, when the stream's time is up."""
        timeout = asyncio.timeout_at(self._deadline())
        try:
            async with timeout:
                self._running.add(timeout)
                try:
                    yield
                finally:
                    self._running.discard(timeout)
        except TimeoutError:
            if not timeout.expired():
                raise  # the handler's own timeout, not ours
            raise (session_revoked() if self.revoked else token_expired()) from None


async def write_replies(
    replies: AsyncIterator[Any] | Awaitable[Any],
    context: grpc.aio.ServicerContext,
    lifetime: StreamLifetime,
) -> None:
    """Runs a server-streaming handler to its end: a generator's replies are written here,
    with context.write(), while the stream may live (only the wait for the next reply is
    bounded); a handler that writes with context.write() itself is bounded as a whole.

    Left to grpc.aio, a generator's replies are written by grpc between the generator's yields,
    so a cancel that lands during a write (always, once a client that stopped reading has
    filled its HTTP/2 window) is raised outside the generator. The generator then stays open
    until the garbage collector breaks its reference cycles, seconds to minutes later, and its
    `finally` (a subscriber's removal, a span's end) waits as long. Here the cancel is raised
    in this call, inside every layer that wraps it, and the generator is closed at once."""
    if not isinstance(replies, AsyncIterator):
        async with lifetime.bound():
            await replies
        return
    try:
        while True:
            try:
                async with lifetime.bound():
                    reply = await anext(replies)
            except StopAsyncIteration:
                return
            try:
                await context.write(reply)
            except grpc.aio.InternalError as exc:
                # The transport refused the write: the client cancelled or went away. That
                # is a cancel (not a failure of ours to log and answer).
                raise asyncio.CancelledError("the client went away") from exc
    finally:
        if isinstance(replies, AsyncGenerator):
            await replies.aclose()
