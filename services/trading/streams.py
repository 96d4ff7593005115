"""StreamAccount fan-out: committed events go to the subscribers of their own account only."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from exness.trading.v1 import trading_pb2 as pb

# A subscriber this far behind is cut off (it reconnects and gets a fresh snapshot) rather than
# letting its queue grow without bound.
MAX_BACKLOG = 10_000


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.AccountEvent] = asyncio.Queue(MAX_BACKLOG)
        self.overflowed = False


class AccountStreams:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, account_id: str) -> Subscription:
        subscription = Subscription()
        self._subscribers[account_id].add(subscription)
        return subscription

    def unsubscribe(self, account_id: str, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(account_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[account_id]

    def publish(self, events: list[pb.AccountEvent]) -> None:
        if not self._subscribers:
            return
        for event in events:
            for subscription in self._subscribers.get(event.account_id, ()):
                try:
                    subscription.queue.put_nowait(event)
                except asyncio.QueueFull:
                    subscription.overflowed = True
