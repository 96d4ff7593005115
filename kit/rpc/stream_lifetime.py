"""A server stream lives no longer than the access token it was opened with: at the token's
expiry it ends with UNAUTHENTICATED (TOKEN_EXPIRED), and the client reconnects with a fresh
token. Without this a stream checked its token once and could run for days after expiry (or
after the user's access was withdrawn)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from kit.rpc.errors import token_expired


async def until_expiry(items: AsyncIterator[Any], expires_at: float | None) -> AsyncIterator[Any]:
    """`items` until `expires_at` (Unix time; None: no limit)."""
    if expires_at is None:
        async for item in items:
            yield item
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (expires_at - time.time())
    while True:
        try:
            # Only the wait for the next item is timed (not the yield), and in this task.
            async with asyncio.timeout_at(deadline):
                item = await anext(items)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise token_expired() from None
        yield item


async def write_until_expiry(writing: Awaitable[Any], expires_at: float | None) -> None:
    """For a handler that writes with context.write(): the same limit around the whole call."""
    if expires_at is None:
        await writing
        return
    try:
        async with asyncio.timeout(expires_at - time.time()):
            await writing
    except TimeoutError:
        raise token_expired() from None
