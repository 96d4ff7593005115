"""A server stream lives no longer than the access token it was opened with: at the token's
expiry it ends with UNAUTHENTICATED (TOKEN_EXPIRED), and the client reconnects with a fresh
token; when the token's session is revoked (the user logged out) it ends at once with
UNAUTHENTICATED (SESSION_REVOKED). Without this a stream checked its token once and could run
for days after expiry, or after the user's access was withdrawn."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

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


async def until_ended(items: AsyncIterator[Any], lifetime: StreamLifetime) -> AsyncIterator[Any]:
    """`items` while the stream may live."""
    while True:
        try:
            # Only the wait for the next item is bounded (not the yield), and in this task.
            async with lifetime.bound():
                item = await anext(items)
        except StopAsyncIteration:
            return
        yield item


async def write_until_ended(writing: Awaitable[Any], lifetime: StreamLifetime) -> None:
    """For a handler that writes with context.write(): the same limit around the whole call."""
    async with lifetime.bound():
        await writing
