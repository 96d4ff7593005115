"""StreamAccount across access-token lifetimes.

The server ends a StreamAccount call with UNAUTHENTICATED when the token it was opened with
expires. Shortly before that, the feed opens a successor call with a fresh token; the old call
stays the source of events until it ends (or has delivered everything up to the successor's
snapshot), and the successor, already subscribed, takes over at once: its snapshot (the
account as it is) and the events it held meanwhile. Events are deduplicated by their journal
sequence, so each reaches the consumer once and in order, and nothing waits for a reconnect.
A call that drops for another transient reason is reopened with backoff. A stream whose
session was revoked (the user logged out, SESSION_REVOKED) is not reopened: the error reaches
the consumer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from grpclib.exceptions import GRPCError, StreamTerminatedError

from exness_client.contracts.exness.trading.v1 import AccountEvent, StreamAccountResponse
from exness_client.errors import Code, ExnessError, is_transient

# The login is over: a fresh token cannot be had, and trying would only hide why.
SESSION_REVOKED = "SESSION_REVOKED"


@dataclass
class OpenedCall:
    call: AsyncIterator[StreamAccountResponse]  # a StreamAccount call (generated stub)
    switch_at: float  # unix time: when its token is due for a refresh


@dataclass
class _Ended:
    error: ExnessError | None


@dataclass
class _Stream:
    opened: OpenedCall
    queue: asyncio.Queue[tuple[_Stream, Any]]
    snapshot: AccountEvent | None = None
    backlog: list[AccountEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        try:
            async for message in self.opened.call:
                if message.event is not None:
                    await self.queue.put((self, message.event))
            await self.queue.put((self, _Ended(None)))
        except GRPCError as exc:
            await self.queue.put((self, _Ended(ExnessError.from_grpc(exc))))
        except (StreamTerminatedError, OSError) as exc:
            failed = ExnessError(Code.UNAVAILABLE, f"connection failed: {exc}")
            await self.queue.put((self, _Ended(failed)))
        except Exception as exc:  # reported, never swallowed: the consumer would wait forever
            failed = ExnessError(Code.UNKNOWN, f"the stream failed: {exc!r}")
            await self.queue.put((self, _Ended(failed)))

    def close(self) -> None:
        self.task.cancel()  # ends the call: the stub's stream closes with its task


class AccountFeed:
    def __init__(
        self,
        open_call: Callable[[bool], Awaitable[OpenedCall]],
        backoff: Callable[[int], float],
        attempts: int,
    ) -> None:
        """`open_call(fresh_token)` starts a StreamAccount call (with a token refreshed first
        when `fresh_token`)."""
        self._open_call = open_call
        self._backoff = backoff
        self._attempts = attempts
        self._queue: asyncio.Queue[tuple[_Stream, Any]] = asyncio.Queue()
        self._active: _Stream | None = None
        self._successor: _Stream | None = None
        self._last = -1  # sequence of the last event handed out
        self._failures = 0

    async def _open(self, fresh_token: bool) -> _Stream:
        return _Stream(await self._open_call(fresh_token), self._queue)

    async def events(self) -> AsyncIterator[AccountEvent]:
        self._successor = await self._open(fresh_token=False)
        try:
            while True:
                timeout = None
                if self._active is not None and self._successor is None:
                    timeout = max(0.0, self._active.opened.switch_at - time.time())
                try:
                    source, item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    self._successor = await self._open(fresh_token=True)
                    continue
                ready = (
                    await self._ended(source, item)
                    if isinstance(item, _Ended)
                    else self._received(source, item)
                )
                for event in ready:
                    yield event
        finally:
            for stream in (self._active, self._successor):
                if stream is not None:
                    stream.close()

    def _received(self, source: _Stream, event: AccountEvent) -> list[AccountEvent]:
        out: list[AccountEvent] = []
        if source is self._active:
            out += self._fresh([event])
        elif source is self._successor:
            if source.snapshot is None:
                source.snapshot = event
                self._failures = 0
            else:
                source.backlog.append(event)
        else:
            return out  # a stream already replaced
        return out + self._promote_if_ready()

    def _promote_if_ready(self) -> list[AccountEvent]:
        successor = self._successor
        if successor is None or successor.snapshot is None:
            return []
        if self._active is not None and self._last < successor.snapshot.sequence:
            return []  # the old call may still deliver events up to the snapshot
        return self._promote(successor)

    def _fresh(self, events: list[AccountEvent]) -> list[AccountEvent]:
        out = []
        for event in events:
            if event.sequence > self._last:
                self._last = event.sequence
                out.append(event)
        return out

    def _promote(self, successor: _Stream) -> list[AccountEvent]:
        """The successor takes over. Its snapshot is handed out only if the old stream did not
        already deliver everything up to it (e.g. it dropped before it could)."""
        if self._active is not None:
            self._active.close()
        self._active, self._successor = successor, None
        assert successor.snapshot is not None
        backlog, successor.backlog = successor.backlog, []
        return self._fresh([successor.snapshot, *backlog])

    async def _ended(self, source: _Stream, ended: _Ended) -> list[AccountEvent]:
        if source is not self._active and source is not self._successor:
            return []
        error = ended.error
        if error is not None and error.reason == SESSION_REVOKED:
            raise error
        expired = error is not None and error.code == Code.UNAUTHENTICATED
        transient = error is None or is_transient(error)
        if not (expired or transient) or self._failures >= self._attempts:
            raise error or ExnessError(Code.UNAVAILABLE, "the stream ended", "")
        if source is self._active:
            self._active = None
            if self._successor is not None:
                return self._promote_if_ready()  # or as soon as its snapshot arrives
        else:
            self._successor = None
        self._failures += 1
        if transient:
            await asyncio.sleep(self._backoff(self._failures - 1))
        self._successor = await self._open(fresh_token=expired)
        return []
